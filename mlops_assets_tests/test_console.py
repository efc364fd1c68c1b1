"""The step lines the commands print: one per step, with its duration; replaced in place on a
terminal; details only with -v."""

import io
import re

import pytest

from mlops_assets.console import Console


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_step_is_one_line_with_its_duration_and_details_only_when_verbose():
    out = io.StringIO()
    console = Console(stream=out)
    with console.step("ingest") as step:
        console.detail("every batch")
        step.line = "2 new batch(es) ingested"
    console.echo("result: OK")
    [line, result] = out.getvalue().splitlines()
    assert re.fullmatch(r"ingest    2 new batch\(es\) ingested +\d+\.\ds", line) and result == "result: OK"

    loud = io.StringIO()
    Console(verbose=True, stream=loud).detail("every batch")
    assert loud.getvalue() == "every batch\n"


def test_on_a_terminal_the_running_step_is_replaced_by_its_result():
    out = Terminal()
    with Console(stream=out).step("train") as step:
        step.line = "v1 approved"
    text = out.getvalue()
    assert text.startswith("train     ...\r\x1b[Ktrain     v1 approved") and text.count("\n") == 1


def test_a_crashing_step_still_prints_its_line_and_the_error_propagates():
    out = io.StringIO()
    with pytest.raises(RuntimeError, match="disk full"), Console(stream=out).step("prepare"):
        raise RuntimeError("disk full")
    assert out.getvalue().startswith("prepare   crashed ")


def test_a_long_step_name_keeps_a_space_before_its_line():
    out = io.StringIO()
    with Console(stream=out).step("force promote") as step:
        step.line = "champion is now v3"
    assert out.getvalue().startswith("force promote champion is now v3 ")
