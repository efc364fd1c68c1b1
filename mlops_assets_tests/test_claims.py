"""docs/claims.md names, for each promise the README and docs/ make, the tests that hold it.
Every claim names at least one test, and every test named exists (found in the test file's
syntax tree: nothing is imported or collected)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLAIMS = REPO / "docs" / "claims.md"
TEST_REFERENCE = re.compile(r"`(mlops_assets_tests/[\w/]+\.py)::(\w+(?:::\w+)?)`")


def claim_rows(text: str) -> list[tuple[str, str]]:
    """(claim, held-by cell) of every table row whose first cell is a claim number."""
    rows = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and len(cells) >= 3 and re.fullmatch(r"\d+", cells[0]):
            rows.append((cells[1], cells[-1]))
    return rows


def defined_tests(path: Path) -> set[str]:
    """Test functions of a module, as `name` or `Class::name`."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names |= {f"{node.name}::{f.name}" for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name.startswith("test")}
    return names


def missing_tests(references: list[tuple[str, str]]) -> list[str]:
    missing, cache = [], {}
    for file, name in references:
        path = REPO / file
        if file not in cache:
            cache[file] = defined_tests(path) if path.is_file() else set()
        if name not in cache[file]:
            missing.append(f"{file}::{name}")
    return missing


def test_every_claim_names_a_test_and_every_named_test_exists():
    rows = claim_rows(CLAIMS.read_text(encoding="utf-8"))
    assert len(rows) >= 40, f"only {len(rows)} claims found in {CLAIMS}"
    without_test = [claim for claim, held_by in rows if not TEST_REFERENCE.search(held_by)]
    assert without_test == []
    references = [ref for _, held_by in rows for ref in TEST_REFERENCE.findall(held_by)]
    assert missing_tests(references) == []


def test_the_check_finds_a_renamed_test_and_a_claim_without_one():
    table = (
        "| # | claim | held by |\n|---|---|---|\n"
        "| 1 | rollback | `mlops_assets_tests/core/test_promotion.py::test_rollback_goes_to_the_previously_serving_version_not_the_previous_number` |\n"
        "| 2 | a renamed test | `mlops_assets_tests/core/test_promotion.py::test_that_was_renamed` |\n"
        "| 3 | a class method | `mlops_assets_tests/test_claims.py::Example::test_inside` |\n"
        "| 4 | nothing holds it | (none) |\n"
    )
    rows = claim_rows(table)
    assert [claim for claim, _ in rows] == ["rollback", "a renamed test", "a class method", "nothing holds it"]
    assert [claim for claim, held_by in rows if not TEST_REFERENCE.search(held_by)] == ["nothing holds it"]
    references = [ref for _, held_by in rows for ref in TEST_REFERENCE.findall(held_by)]
    assert missing_tests(references) == [
        "mlops_assets_tests/core/test_promotion.py::test_that_was_renamed",
        "mlops_assets_tests/test_claims.py::Example::test_inside",
    ]
