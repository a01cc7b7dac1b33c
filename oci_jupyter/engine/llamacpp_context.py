"""The llama.cpp worker's work on the model's context: read a prompt from the longest prefix
the live context or a saved state holds (engine/kv_cache.py), in chunks a stop can end; decode
with prompt-lookup drafts (engine/decoding.py); and, for a program's reply, give way between
two tokens to a person's request queued meanwhile and read its own context back.

:class:`ContextWork` is a part of :class:`~.llamacpp.LlamaCppEngine` (a mixin); only the
worker thread calls it."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import llama_internals as internals
from .base import Delta, FinishReason, Message
from .decoding import LOOKUP_MAX_PAUSE, PromptLookupDrafts, TextOut
from .fim import FimFormat, chunk_bounds
from .kv_cache import PrefixCache, common_prefix, restore_sequence, save_sequence
from .llamacpp_jobs import Job, RequestStats

log = logging.getLogger(__name__)

MIN_SAVED_TOKENS = 16
"""Shorter states are not worth a cache entry (reading them again costs a fraction of a second)."""


class ContextWork:
    """Prefill, decoding and giving way, on the worker thread (a part of the engine)."""

    cache: PrefixCache
    prompt_lookup: str
    _n_ctx: int
    _n_batch: int
    _n_threads: int
    _n_threads_batch: int
    _lookup_tokens: int
    _live_fim: bool
    _reading_to: int
    _formatter: Any

    if TYPE_CHECKING:  # the engine's and its queue's

        @property
        def _llm(self) -> Any: ...
        @property
        def fim_format(self) -> FimFormat | None: ...
        def _use_threads(self, decode: int, batch: int) -> None: ...
        def _choose_threads(self) -> None: ...
        def _arm_abort(self, armed: bool) -> None: ...
        def _should_stop(self) -> bool: ...
        def _tokenize(self, text: str, special: bool = False) -> list[int]: ...
        def _is_control(self, marker: str) -> bool: ...
        def _take_waiting(self) -> Job | None: ...
        def _serve_one(self, job: Job) -> None: ...

    def _restore_prefix(
        self, tokens: list[int], end: int, stats: RequestStats | None = None
    ) -> int:
        """Bring the live context to the longest beginning of ``tokens[:end]`` it or a saved
        state holds (restoring that state); returns how many tokens it holds."""
        llm = self._llm
        live = common_prefix(llm.input_ids[: llm.n_tokens], tokens)
        saved, shared = self.cache.find(tokens)
        if saved is not None and shared > live:
            internals.clear(llm)
            if restore_sequence(internals.context_handle(llm), saved.data, saved.nbytes):
                llm.input_ids[: len(saved.tokens)] = saved.tokens
                llm.n_tokens = len(saved.tokens)
                saved.touch()
                live = shared
                if stats is not None:
                    stats.restored = True
                self.cache.stats.restores += 1
            else:  # refused (should not happen with the same model): read everything
                log.warning("llama.cpp refused a saved state; reading the prompt again")
                internals.clear(llm)
                live = 0
        keep = min(live, end)
        internals.truncate(llm, keep)
        return keep

    def _remember(self) -> None:
        """Save the live state into the cache (unless it holds it already)."""
        llm = self._llm
        n = int(llm.n_tokens)
        if n < MIN_SAVED_TOKENS or self.cache.budget_bytes <= 0:
            return
        tokens = llm.input_ids[:n]
        held = self.cache.holds(tokens)
        if held is not None:
            held.touch()
            return
        saved = save_sequence(internals.context_handle(llm))
        if saved is not None:
            self.cache.add(tokens, *saved)

    def _prefill(self, job: Job, stats: RequestStats) -> bool:
        """Bring the context to all of the prompt but its last token (the decoder reads that
        one: its logits start the reply); a background prefill reads all of it. Returns False
        when stopped."""
        llm = self._llm
        tokens = job.tokens
        started = time.perf_counter()
        end = len(tokens) if job.warm else len(tokens) - 1
        keep = self._restore_prefix(tokens, end, stats)
        stats.cached_tokens = keep
        if keep > 0:
            self.cache.stats.hits += 1
        else:
            self.cache.stats.misses += 1
        self._choose_threads()
        self._use_threads(self._n_threads, self._n_threads_batch)
        self._arm_abort(True)
        try:
            split = job.keep if job.fim is not None else 0
            for start, stop in chunk_bounds(keep, end, self._n_batch, split):
                self._reading_to = stop
                chunk = tokens[start:stop]
                while True:
                    if self._should_stop():
                        return False
                    if self._someone_waits(job):
                        self._arm_abort(False)
                        if not self._give_way(job):
                            return False
                        self._arm_abort(True)
                    try:
                        llm.eval(chunk)
                        break
                    except RuntimeError:
                        # Aborted mid-chunk: llama.cpp dropped that chunk's cells; so do we.
                        internals.truncate(llm, int(llm.n_tokens))
                        if self._should_stop():
                            return False
                        if not job.interrupted:
                            raise
                        # A person's request came: give way, then read this chunk again.
                stats.evaluated_tokens += len(chunk)
                self._choose_threads()  # something may have started computing meanwhile
                self._use_threads(self._n_threads, self._n_threads_batch)
            return not self._should_stop()
        finally:
            self._arm_abort(False)
            stats.prefill_seconds = time.perf_counter() - started

    def _give_way(self, job: Job) -> bool:
        """Between two tokens (or two prompt chunks) of a program's reply (oci-eval, the
        OpenAI endpoint), serve the chat turns and ghost text queued meanwhile, then read the
        reply's context back and go on: a person never waits for a long background reply.
        The context is saved in the prefix cache first, so reading it back is a copy (it is
        read again only if the cache dropped it). Returns False when ``job`` was stopped
        meanwhile."""
        job.interrupted = False
        llm = self._llm
        context = [int(t) for t in llm.input_ids[: llm.n_tokens]]
        self._remember()
        while (waiting := self._take_waiting()) is not None:
            self._serve_one(waiting)
        if job.stop.is_set():
            return False
        self._read_back(context)
        return True

    def _read_back(self, context: list[int]) -> None:
        """Bring the live context to exactly ``context``: from the cache when it holds it,
        reading what it lacks."""
        llm = self._llm
        if self._live_fim:  # keep the last keystroke's state for the next one
            self._live_fim = False
            self._remember()
        keep = self._restore_prefix(context, len(context))
        self._use_threads(self._n_threads, self._n_threads_batch)
        for start, stop in chunk_bounds(keep, len(context), self._n_batch):
            llm.eval(context[start:stop])

    def _decode(self, job: Job, stats: RequestStats) -> FinishReason:
        llm = self._llm
        p = job.params
        started = time.perf_counter()
        # Drafts are checked in batches of up to lookup_tokens + 1: with the prompt threads
        # (all cores) those batches collapse as soon as anything else computes (2.5 s instead
        # of 0.4 s for 11 tokens, measured); the decoding threads leave that core free.
        self._choose_threads()
        self._use_threads(self._n_threads, self._n_threads)
        llm.set_seed(p.seed if p.seed is not None else random.randint(0, 2**31 - 1))
        sampler = internals.new_sampler(
            llm,
            top_k=40,
            top_p=p.top_p,
            min_p=0.05,
            typical_p=1.0,
            temp=p.temperature,
            repeat_penalty=1.0,
        )
        out = TextOut(
            piece=lambda token: llm.detokenize([token]),
            stops=[*p.stop, self._formatter.eos_token],
            emit=lambda text: job.emit(Delta(text)),
        )
        room_left = self._n_ctx - len(job.tokens)
        limit = min(p.max_tokens, room_left) if p.max_tokens > 0 else room_left
        is_eog = self._end_check(job)
        drafter = self._drafter() if self.wants_lookup(job.messages) else None
        pending = job.tokens[-1]
        generated = 0
        pause = resume_at = 0  # "auto": no drafts before token resume_at
        reason: FinishReason = "length"
        try:
            checked = time.monotonic()
            while generated < limit:
                if job.stop.is_set():
                    reason = "cancelled"
                    break
                if self._someone_waits(job):
                    if not self._give_way(job):
                        reason = "cancelled"
                        break
                    self._use_threads(self._n_threads, self._n_threads)
                if time.monotonic() - checked >= 1.0:  # a kernel may have started computing
                    checked = time.monotonic()
                    self._choose_threads()
                    self._use_threads(self._n_threads, self._n_threads)
                base = int(llm.n_tokens)
                room = min(self._n_ctx - base - 1, limit - generated - 1)
                # No draft for the first token: a batch would delay the first text (TTFT).
                draft: list[int] = []
                if drafter is not None and generated and generated >= resume_at:
                    draft = drafter(llm.input_ids[:base], pending, room)
                self._eval([pending, *draft], all_logits=bool(draft))
                stats.drafted_tokens += len(draft)
                done = False
                i = 0
                for i in range(len(draft) + 1):
                    token = internals.sample(sampler, llm, i if draft else -1)
                    if is_eog(token):
                        reason, done = "stop", True
                        break
                    generated += 1
                    if out.add(token):
                        reason, done = "stop", True
                        break
                    if generated >= limit:
                        reason, done = "length", True
                        break
                    if job.stop.is_set():  # within a token, drafts or not
                        reason, done = "cancelled", True
                        break
                    if i < len(draft) and token == draft[i]:
                        continue  # confirmed: the drafted token is already in the context
                    pending = token
                    break
                stats.accepted_tokens += min(i, len(draft))
                valid = base + i + 1  # pending + the confirmed drafts
                if valid < llm.n_tokens:
                    internals.truncate(llm, valid)
                if done:
                    break
                if draft and self.prompt_lookup == "auto":
                    # A draft the model rejected at once: the reply is not copying right now;
                    # pause drafting, twice as long after each miss in a row.
                    if i == 0:
                        pause = min(LOOKUP_MAX_PAUSE, max(2, pause * 2))
                        resume_at = generated + pause
                    elif i >= 2:
                        pause = 0
            if reason != "cancelled" and not out.stopped:
                out.finish()
        finally:
            stats.completion_tokens = generated
            stats.decode_seconds = time.perf_counter() - started
            sampler.close()
        return reason

    def _eog_check(self) -> Callable[[int], bool]:
        import llama_cpp

        vocab = internals.model_vocab(self._llm).vocab
        return lambda token: bool(llama_cpp.llama_vocab_is_eog(vocab, token))

    def _end_check(self, job: Job) -> Callable[[int], bool]:
        """What ends a reply: an end-of-generation token; for a middle also any infilling
        marker (a model that writes ``<|fim_suffix|>`` has left the hole)."""
        is_eog = self._eog_check()
        fim = self.fim_format if job.fim is not None else None
        if fim is None:
            return is_eog
        ends = {
            self._tokenize(text, special=True)[0]
            for text in fim.stop_texts
            if self._is_control(text)
        }
        return lambda token: token in ends or is_eog(token)

    def _eval(self, tokens: list[int], *, all_logits: bool) -> None:
        if all_logits:
            internals.eval_all_logits(self._llm, tokens)
        else:
            self._llm.eval(tokens)

    def _drafter(self) -> Callable[[Any, int, int], list[int]] | None:
        return PromptLookupDrafts(self._lookup_tokens)

    def wants_lookup(self, messages: Sequence[Message]) -> bool:
        """Whether a reply to these messages is drafted from its prompt. "auto": when the
        prompt holds code outside the system prompt (a refinement or a next step copies the
        previous reply's code, a fix rewrites the failed cell); measured, first replies lose
        (0.86x) and those win (3.05x refinements, 1.13x fixes; benchmarks/README.md)."""
        if self.prompt_lookup != "auto":
            return self.prompt_lookup == "on"
        return any("```" in m.get("content", "") for m in messages if m.get("role") != "system")
