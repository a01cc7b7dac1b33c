"""The data files a request names are previewed for the model (prompts/files.py)."""

from __future__ import annotations

from pathlib import Path

from oci_jupyter.prompts import NotebookContext, PromptLimits, build_messages, estimate_counter
from oci_jupyter.prompts.files import file_previews, named_files


def folder_with_data(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    (folder / "raw").mkdir(parents=True)
    rows = "\n".join(f"{i},{i * 1.5},{'north' if i % 2 else 'south'}" for i in range(100))
    (folder / "sales.csv").write_text("Id,Fare,Region\n" + rows + "\n")
    (folder / "raw" / "log.txt").write_text("line\n" * 3)
    (tmp_path / "secret.csv").write_text("password\nhunter2\n")
    return folder


def test_a_named_file_in_the_folder_is_previewed(tmp_path: Path) -> None:
    folder = folder_with_data(tmp_path)
    (preview,) = file_previews("What is the mean Fare in sales.csv?", folder)
    assert preview.startswith("sales.csv (")
    assert "101 lines" in preview
    assert "Id,Fare,Region\n0,0.0,south" in preview
    assert "4,6.0,south" in preview
    assert "5,7.5" not in preview  # the header and five rows only


def test_only_files_inside_the_folder_by_the_names_given(tmp_path: Path) -> None:
    folder = folder_with_data(tmp_path)
    request = "Compare ../secret.csv, /etc/passwd.txt, raw/log.txt, missing.csv and sales.csv"
    assert [p.name for p in named_files(request, folder)] == ["log.txt", "sales.csv"]
    assert file_previews("sales.csv", None) == []
    assert file_previews("no file named here", folder) == []


def test_the_preview_goes_right_before_the_request(tmp_path: Path) -> None:
    folder = folder_with_data(tmp_path)
    request = "Mean Fare by Region in sales.csv"
    messages = build_messages(
        request,
        NotebookContext(cells=[]),
        window=4096,
        count=estimate_counter,
        files=file_previews(request, folder),
    )
    prompt = messages[-1]["content"]
    assert prompt.startswith("Data files the request names (in the notebook's folder):\nsales.csv")
    assert "\n\nRequest:\nMean Fare by Region in sales.csv" in prompt


def test_a_preview_that_does_not_fit_is_left_out(tmp_path: Path) -> None:
    folder = folder_with_data(tmp_path)
    request = "sales.csv"
    messages = build_messages(
        request,
        NotebookContext(cells=[]),
        window=700,
        count=estimate_counter,
        limits=PromptLimits(reply_tokens=100),
        files=["x" * 4000],
    )
    assert "Data files" not in messages[-1]["content"]
    assert file_previews(request, folder)  # (it would have been there otherwise)
