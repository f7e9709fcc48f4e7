"""`loom eval`'s pure parts: the BFCL-style tool-call checker (normalisation included), the
metrics, the shipped data files, the suite loader's errors and the HTML report's escaping."""

from __future__ import annotations

import json

import pytest

from loom_gateway.eval import report as reports
from loom_gateway.eval import suite as suites
from loom_gateway.eval.checker import ModelCall, check_call, normalize_string, reference_arguments
from loom_gateway.eval.metrics import Verdict, latency_summary, percentile, rate
from loom_gateway.eval.retention import recalled, script
from loom_gateway.eval.runner import verdicts
from loom_gateway.eval.suite import ExpectedCall, FunctionDef, ToolCase

EVENT = FunctionDef(name="create_event", parameters={
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "duration_minutes": {"type": "integer"},
        "price": {"type": "number"},
        "attendees": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "steps": {"type": "array", "items": {"type": "string"}},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "urgent": {"type": "boolean"},
        "reminder": {"type": "object", "properties": {
            "minutes_before": {"type": "integer"}, "method": {"type": "string", "enum": ["email", "popup"]}},
            "required": ["minutes_before", "method"], "additionalProperties": False},
    },
    "required": ["title"],
})
OTHER = FunctionDef(name="list_events", parameters={"type": "object", "properties": {"date": {"type": "string"}}})
FUNCTIONS = {f.name: f for f in (EVENT, OTHER)}


def case(**arguments) -> ToolCase:
    return ToolCase(id="c", category="t", tools=["create_event", "list_events"], request="r",
                    expected=ExpectedCall(name="create_event", arguments=arguments))


def check(args, expected: ToolCase, name: str = "create_event"):
    text = args if isinstance(args, str) else json.dumps(args)
    return check_call([ModelCall(name, text)], expected, FUNCTIONS)


def test_an_exact_call_passes_every_rate():
    v = check({"title": "Team sync"}, case(title=["Team sync"]))
    assert (v.parsed, v.schema_valid, v.right_function, v.exact, v.error_type) == (True, True, True, True, "")


@pytest.mark.parametrize("got, want", [
    ("  team SYNC ", "Team sync"),             # case and surrounding whitespace
    ("New-York", "new york"),                  # BFCL drops spaces and ,./-_*^
    ("April 1, 2024", "april 1 2024"),
    ("it's", 'it"s'),                          # single quotes count as double quotes
    ("Ｔｅａｍ ｓｙｎｃ", "team sync"),            # full-width letters fold (NFKC)
    ("STRASSE", "straße"),                     # case folding, not just lower()
])
def test_strings_compare_after_normalisation(got, want):
    assert normalize_string(got) == normalize_string(want)
    assert check({"title": got}, case(title=[want])).exact


def test_a_different_string_is_a_value_error():
    v = check({"title": "Team sink"}, case(title=["Team sync"]))
    assert (v.exact, v.schema_valid, v.error_type) == (False, True, "value")


def test_int_and_float_are_equivalent_but_bool_is_no_number():
    assert check({"title": "a", "price": 30}, case(title=["a"], price=[30.0])).exact
    assert check({"title": "a", "price": 30.0}, case(title=["a"], price=[30])).exact
    assert check({"title": "a", "duration_minutes": 45.0}, case(title=["a"], duration_minutes=[45])).exact
    half = check({"title": "a", "duration_minutes": 45.5}, case(title=["a"], duration_minutes=[45]))
    assert half.error_type == "type"
    v = check({"title": "a", "duration_minutes": True}, case(title=["a"], duration_minutes=[1]))
    assert (v.exact, v.error_type) == (False, "type")
    assert check({"title": "a", "urgent": 1}, case(title=["a"], urgent=[True])).error_type == "type"
    assert check({"title": "a", "price": "30"}, case(title=["a"], price=[30])).error_type == "type"


def test_enums_are_checked_before_values():
    v = check({"title": "a", "unit": "kelvin"}, case(title=["a"], unit=["kelvin", "celsius"]))
    assert (v.exact, v.schema_valid, v.error_type) == (False, False, "enum")
    assert check({"title": "a", "unit": "celsius"}, case(title=["a"], unit=["celsius"])).exact


def test_set_like_arrays_ignore_order_and_others_do_not():
    want = case(title=["a"], attendees=[["ana@example.com", "li@example.com"]], steps=[None, ["one", "two"]])
    assert check({"title": "a", "attendees": ["LI@example.com", "ana@example.com"]}, want).exact
    assert check({"title": "a", "attendees": ["ana@example.com"]}, want).error_type == "value"
    ordered = case(title=["a"], steps=[["one", "two"]])
    assert check({"title": "a", "steps": ["one", "two"]}, ordered).exact
    assert check({"title": "a", "steps": ["two", "one"]}, ordered).error_type == "value"


def test_optional_arguments_may_be_left_out_only_where_the_case_says():
    assert check({"title": "a"}, case(title=["a"], unit=[None, "celsius"])).exact
    assert check({"title": "a", "unit": "celsius"}, case(title=["a"], unit=[None, "celsius"])).exact
    v = check({"title": "a"}, case(title=["a"], unit=["celsius"]))
    assert (v.exact, v.schema_valid, v.error_type) == (False, True, "missing_optional")


def test_required_missing_unknown_and_unexpected_parameters_fail():
    v = check({"duration_minutes": 5}, case(title=["a"], duration_minutes=[5]))
    assert (v.schema_valid, v.error_type) == (False, "missing_required")
    v = check({"title": "a", "colour": "red"}, case(title=["a"]))
    assert v.error_type == "unexpected_param"
    assert v.schema_valid  # the schema allows extra keys; BFCL does not
    v = check({"title": "a", "urgent": False}, case(title=["a"]))  # valid, but the case expects it absent
    assert (v.exact, v.error_type) == (False, "unexpected_param")


def test_nested_objects_are_checked_recursively():
    want = case(title=["a"], reminder=[{"minutes_before": [15], "method": ["popup"]}])
    assert check({"title": "a", "reminder": {"minutes_before": 15.0, "method": "popup"}}, want).exact
    v = check({"title": "a", "reminder": {"minutes_before": 15, "method": "email"}}, want)
    assert (v.error_type, v.schema_valid) == ("value", True)
    assert "reminder.method" in v.error
    v = check({"title": "a", "reminder": {"minutes_before": 15}}, want)
    assert (v.error_type, v.schema_valid) == ("missing_required", False)
    v = check({"title": "a", "reminder": {"minutes_before": 15, "method": "popup", "x": 1}}, want)
    assert (v.error_type, v.schema_valid) == ("unexpected_param", False)
    either = case(title=["a"], reminder=[{"minutes_before": [10], "method": ["email"]},
                                         {"minutes_before": [15], "method": ["popup"]}])
    assert check({"title": "a", "reminder": {"minutes_before": 15, "method": "popup"}}, either).exact


def test_parse_failures_and_wrong_functions():
    assert check_call([], case(title=["a"]), FUNCTIONS).error_type == "wrong_count"
    two = [ModelCall("create_event", '{"title": "a"}')] * 2
    assert check_call(two, case(title=["a"]), FUNCTIONS).error_type == "wrong_count"
    v = check('{"title": "a"', case(title=["a"]))
    assert (v.parsed, v.error_type) == (False, "not_json")
    assert check("[1, 2]", case(title=["a"])).error_type == "not_json"
    v = check({"date": "2026-01-01"}, case(title=["a"]), name="list_events")
    assert (v.parsed, v.schema_valid, v.right_function, v.exact, v.error_type) == (
        True, True, False, False, "wrong_function")
    v = check({"x": 1}, case(title=["a"]), name="no_such_function")
    assert (v.parsed, v.schema_valid, v.error_type) == (True, False, "wrong_function")


def test_every_shipped_case_accepts_its_own_reference_call():
    suite = suites.load_suite("full")
    cases = suites.load_tool_cases(suites.resolve(suite, suite.tool_calls.cases_file))
    functions = {f.name: f for f in cases.functions}
    assert len(cases.cases) >= 100
    assert len({c.category for c in cases.cases}) >= 6
    assert sum(len(c.tools) > 1 for c in cases.cases) >= 30  # the right function must be chosen
    for c in cases.cases:
        args = reference_arguments(c.expected.arguments)
        v = check_call([ModelCall(c.expected.name, json.dumps(args))], c, functions)
        assert v.exact and v.schema_valid, (c.id, v)


def test_a_limited_run_spreads_its_cases_over_the_categories():
    from loom_gateway.eval.toolcalls import pick

    suite = suites.load_suite("small")
    cases = suites.load_tool_cases(suites.resolve(suite, suite.tool_calls.cases_file)).cases
    chosen = pick(cases, suite.tool_calls.limit)
    assert len(chosen) == suite.tool_calls.limit == len({c.category for c in chosen})
    assert pick(cases, None) == cases and pick(cases, 10_000) == cases


def test_shipped_suites_and_retention_data_load():
    assert {"full", "small"} <= set(suites.shipped_suites())
    full, small = suites.load_suite("full"), suites.load_suite("small")
    assert max(full.retention.turns) == 16 and max(small.retention.turns) <= 4
    assert small.ttft.concurrency == 2
    data = suites.load_retention(suites.resolve(full, full.retention.facts_file))
    assert len(data.facts) >= full.retention.facts
    assert len(data.distractors) >= 14  # k = 16 needs 14 distractor turns, none repeated


def test_bad_suite_files_are_errors_that_name_the_place(tmp_path):
    with pytest.raises(suites.SuiteError, match="no suite file"):
        suites.load_suite(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nttft: {prompts: [], requests: 1}\n")
    with pytest.raises(suites.SuiteError, match=r"ttft\.prompts"):
        suites.load_suite(str(bad))
    bad.write_text("name: x\nsurprise: 1\n")
    with pytest.raises(suites.SuiteError, match="surprise"):
        suites.load_suite(str(bad))
    bad.write_text("name: [unclosed\n")
    with pytest.raises(suites.SuiteError, match="not valid YAML"):
        suites.load_suite(str(bad))
    bad.write_text("a: &x [1, 2]\nb: [*x, *x]\nname: x\n")  # aliases: the seed of a YAML bomb
    with pytest.raises(suites.SuiteError, match="anchors and aliases"):
        suites.load_suite(str(bad))
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps({"functions": [EVENT.model_dump()], "cases": [
        {"id": "x", "category": "c", "tools": ["create_event"], "request": "r",
         "expected": {"name": "create_event", "arguments": {"colour": ["red"]}}}]}))
    with pytest.raises(suites.SuiteError, match="not in the schema"):
        suites.load_tool_cases(cases)
    facts = tmp_path / "facts.yaml"
    facts.write_text("facts: [{id: f, statement: 'code 12', question: 'is it 12?', answers: ['12']}]\n"
                     "distractors: [hi]\n")
    with pytest.raises(suites.SuiteError, match="contains its answer"):
        suites.load_retention(facts)


def test_percentiles_rates_and_verdicts():
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)
    s = latency_summary([0.1, 0.2, 0.3], errors=1, concurrency=2)
    assert (s["requests"], s["errors"], s["p50_ms"], s["concurrency"]) == (4, 1, 200.0, 2)
    assert rate([]) is None and rate([True, False, True, True]) == 0.75
    assert Verdict("m", "direct", 400, 500, False).passed is True
    assert Verdict("m", "direct", 0.5, 0.8, True).passed is False
    assert Verdict("m", "direct", None, 0.8, True).passed is None
    result = {"ttft": {"direct": {"concurrency_1": {"p50_ms": 120.0, "p95_ms": 900.0}}},
              "tool_calls": {"channel": "direct", "parse_rate": 1.0, "schema_valid_rate": 1.0,
                             "exact_match_rate": 0.3}}
    got = {v["metric"]: v["pass"] for v in verdicts(result, suites.Thresholds(
        ttft_p50_ms=500, ttft_p95_ms=500, tool_parse_rate=1.0, tool_exact_match_rate=0.8))}
    assert got == {"ttft_p50_ms": True, "ttft_p95_ms": False, "tool_parse_rate": True,
                   "tool_exact_match_rate": False}


def test_retention_script_and_recall():
    fact = suites.Fact(id="f", statement="My code is 4817.", question="What is my code?", answers=["4817"])
    assert script(fact, 1, ["d"], 0) == ["My code is 4817. What is my code?"]
    assert script(fact, 2, ["d"], 0) == ["My code is 4817.", "What is my code?"]
    turns = script(fact, 5, ["a", "b", "c", "d"], 3)
    assert turns == ["My code is 4817.", "d", "a", "b", "What is my code?"]
    assert recalled("Your code is 4817!", ["4817"])
    assert not recalled("Your code is 48170", ["4817"])  # a whole token, not a substring
    assert recalled("born in TROMSØ.", ["Tromsø"])
    assert recalled("QX-392", ["QX 392"])
    # Echoing the statement back is not recall; saying the answer in other words is.
    assert not recalled("My code is 4817. What is my code?", ["4817"], fact.statement)
    assert recalled("My code is 4817. Your code is 4817.", ["4817"], fact.statement)


def test_the_html_report_escapes_model_output(tmp_path):
    evil = "<script>alert(1)</script>"
    report = {"suite": {"name": "s"}, "command": "loom eval", "started_at": 0, "duration_s": 1, "subjects": [
        {"label": evil, "verdicts": [], "tool_calls": {
            "cases": 1, "parse_rate": 1.0, "schema_valid_rate": 1.0, "right_function_rate": 1.0,
            "exact_match_rate": 0.0, "by_category": {"c": {"cases": 1, "exact_match_rate": 0.0,
                                                           "schema_valid_rate": 1.0}},
            "results": [{"id": "x", "category": "c", "parsed": True, "schema_valid": True, "right_function": True,
                         "exact": False, "error_type": "value", "error": evil}]}}]}
    json_path, html_path = reports.write(report, tmp_path / "out")
    page = html_path.read_text()
    assert evil not in page and "&lt;script&gt;" in page
    assert json.loads(json_path.read_text())["subjects"][0]["label"] == evil


def test_the_cli_refuses_bad_options_and_unreachable_targets(tmp_path):
    from typer.testing import CliRunner

    from loom_common.devstack import infra
    from loom_gateway.eval.cli import app

    runner = CliRunner()

    def said(r) -> str:  # rich wraps long lines at the terminal's width
        return " ".join(r.output.split())
    r = runner.invoke(app, ["eval"])
    assert r.exit_code == 2 and "--model" in said(r)
    r = runner.invoke(app, ["eval", "--model", "m", "--suite", "nope"])
    assert r.exit_code == 2 and "no shipped suite" in said(r)
    suite = tmp_path / "mine.yaml"  # names a facts file that is not there
    suite.write_text("name: mine\nretention: {turns: [2], facts_file: no_such_facts.yaml}\n")
    r = runner.invoke(app, ["eval", "--model", "m", "--suite", str(suite)])
    assert r.exit_code == 2 and "no_such_facts.yaml" in r.output.replace("\n", "")
    r = runner.invoke(app, ["eval", "--model", "m", "--api-key-env", "LOOM_TEST_UNSET_VARIABLE"])
    assert r.exit_code == 2 and "LOOM_TEST_UNSET_VARIABLE" in said(r)
    # Nothing listens there: one clear error before anything is measured, and no report.
    url = f"http://127.0.0.1:{infra.free_port()}/v1"
    r = runner.invoke(app, ["eval", "--model", "m", "--base-url", url, "--suite", "small",
                            "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "cannot evaluate m" in said(r)
    assert not (tmp_path / "out").exists()
