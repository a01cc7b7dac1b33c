"""A made-up data folder shaped like InfiAgent-DABench's, written by the tests at run time.

Two small CSV files and four questions written for oci_jupyter's tests. Nothing here comes
from the benchmark, whose data is CC BY-NC 4.0 and never part of this repository: the folder
only has the benchmark's layout (the file names ``oci-eval dabench`` reads, ``tables/``, and a
``SHA256SUMS`` of every file), so that the harness reads it as it reads the real one. It is
written from the literals below into a temporary folder, never kept in the repository.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from oci_jupyter.evaluation.dabench import LABELS_FILE, QUESTIONS_FILE, SUMS_FILE, TABLES

MADE_UP_QUESTIONS: list[dict[str, Any]] = [
    {
        "id": 1,
        "question": "What is the average price of an order?",
        "concepts": ["Summary Statistics"],
        "constraints": "Use every row. Round the mean to two decimal places.",
        "format": '@mean_price[value] where "value" is a number rounded to two decimal places.',
        "file_name": "orders.csv",
        "level": "easy",
    },
    {
        "id": 2,
        "question": "Which region has the most orders, and how many orders does it have?",
        "concepts": ["Summary Statistics", "Distribution Analysis"],
        "constraints": "Count the rows per region.",
        "format": '@top_region[name]\n@top_region_orders[count] where "name" is the region\'s '
        'name and "count" an integer.',
        "file_name": "orders.csv",
        "level": "medium",
    },
    {
        "id": 3,
        "question": 'Add a column "total" equal to price times quantity. What is the total '
        "revenue, the largest total, and the region of the order with the largest total?",
        "concepts": ["Feature Engineering", "Summary Statistics"],
        "constraints": "Do not drop any rows. Round numbers to one decimal place.",
        "format": "@revenue[value]\n@largest_total[value]\n@largest_region[name]",
        "file_name": "orders.csv",
        "level": "hard",
    },
    {
        "id": 4,
        "question": "What is the highest temperature?",
        "concepts": ["Summary Statistics"],
        "constraints": "Use the temp_c column.",
        "format": '@max_temp[value] where "value" has one decimal place.',
        "file_name": "weather.csv",
        "level": "easy",
    },
]
MADE_UP_LABELS: list[dict[str, Any]] = [
    {"id": 1, "common_answers": [["mean_price", "12.50"]]},
    {"id": 2, "common_answers": [["top_region", "north"], ["top_region_orders", "3"]]},
    {
        "id": 3,
        "common_answers": [
            ["revenue", "150.5"],
            ["largest_total", "40.0"],
            ["largest_region", "north"],
        ],
    },
    {"id": 4, "common_answers": [["max_temp", "23.0"]]},
]
MADE_UP_TABLES = {
    "orders.csv": "order_id,region,price,quantity\n1,north,10.0,2\n2,south,12.5,1\n"
    "3,north,8.0,5\n4,east,20.0,1\n5,north,15.5,2\n6,south,9.0,3\n",
    "weather.csv": "day,temp_c\nmon,21.5\ntue,23.0\nwed,19.5\n",
}


def write_made_up_data(folder: Path) -> Path:
    """The made-up data folder in ``folder``, its ``SHA256SUMS`` computed as ``sha256sum``
    writes it."""
    files = {
        QUESTIONS_FILE: "".join(json.dumps(row) + "\n" for row in MADE_UP_QUESTIONS),
        LABELS_FILE: "".join(json.dumps(row) + "\n" for row in MADE_UP_LABELS),
        **{f"{TABLES}/{name}": text for name, text in MADE_UP_TABLES.items()},
    }
    sums = []
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        sums.append(f"{hashlib.sha256(text.encode()).hexdigest()}  {name}\n")
    (folder / SUMS_FILE).write_text("".join(sums), encoding="utf-8")
    return folder


@pytest.fixture(scope="session", name="dabench_data")
def made_up_dabench_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dabench_data``: the made-up data folder, written once a session (a test that alters
    it works on a copy). A test module imports this function to use the fixture."""
    return write_made_up_data(tmp_path_factory.mktemp("made-up-dabench"))
