/**
 * The executor: the model's code becomes a real cell of the user's notebook
 * and runs in the notebook's own kernel, through the same APIs a user's
 * Shift+Enter goes through.
 *
 * - ./metadata.ts: the `oci` cell metadata, cells by id;
 * - ./place.ts: where the code goes (a rewrite, or a new cell);
 * - ./kernel.ts: a usable kernel, free of anyone else's work;
 * - ./run.ts: one run of the loop's cell (`runCell`);
 * - ./user-run.ts: the user's own run, when auto-execute is off;
 * - ./outcome.ts: what a run reports, and how it fails.
 */
export * from './metadata';
export * from './outcome';
export * from './place';
export * from './run';
export * from './user-run';
