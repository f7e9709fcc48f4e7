"""The medical-agent template's built-in tools over the sample knowledge graph (migration
0030_medkg.sql) on the real Postgres, through the executor (so the argument schemas hold):
a contraindicated drug is blocked with its reason and its sentences removed, an interaction
with a current medication blocks, a relative one is a caution; lab values are flagged against
the reference ranges; the compliance review adds a disclaimer, escalation advice for a red
flag, and blocks a definitive diagnosis."""

from __future__ import annotations

import pytest

from loom_tools.domain.types import Call

pytestmark = pytest.mark.integration

DRAFT = ("For the pain you could take ibuprofen 400 mg up to three times a day. "
         "Paracetamol is an alternative. Rest helps too.")


async def _call(box, tenant, tool, args):
    out = await box.executor.invoke(Call(tenant, tool, args, run_id="run-1"))
    assert out.ok, out.error_message
    return out.result


async def test_the_medkg_tools_are_builtins_and_reserved(toolbox_factory, tenant) -> None:
    from loom_tools.errors import InvalidArguments

    box = toolbox_factory()
    names = {s.name for s in await box.executor.list(tenant, "builtin")}
    assert {"medkg.lookup", "medkg.check", "medkg.labs", "medkg.review"} <= names
    with pytest.raises(InvalidArguments):
        await box.catalog.register_http(tenant, name="medkg.check", description="", method="POST",
                                        url="http://127.0.0.1:9/t", parameters=None)


async def test_a_contraindicated_drug_is_blocked_with_its_reason(toolbox_factory, tenant) -> None:
    out = await _call(toolbox_factory(), tenant, "medkg.check",
                      {"draft": DRAFT, "conditions": "stomach ulcer, asthma", "medications": ["metformin"]})
    assert out["proposed"] == ["Ibuprofen", "Paracetamol"] and out["allowed"] == ["Paracetamol"]
    assert out["conditions"] == ["Peptic ulcer disease", "Asthma"] or set(out["conditions"]) == {
        "Peptic ulcer disease", "Asthma"}
    [blocked] = out["blocked"]
    assert blocked["drug"] == "Ibuprofen" and blocked["with"] == "Peptic ulcer disease"
    assert blocked["severity"] == "absolute" and "bleeding" in blocked["reason"]
    # The asthma contraindication of NSAIDs is relative: a caution, not a block.
    assert [(c["drug"], c["with"]) for c in out["cautions"]] == [("Ibuprofen", "Asthma")]
    assert "ibuprofen 400" not in out["text"] and "Paracetamol is an alternative." in out["text"]
    assert "Ibuprofen is not suitable here" in out["text"]


async def test_an_interaction_with_a_current_medication_blocks(toolbox_factory, tenant) -> None:
    out = await _call(toolbox_factory(), tenant, "medkg.check", {
        "draft": "Clarithromycin would treat the infection. Keep taking your warfarin.",
        "medications": "warfarin 5 mg, simvastatin"})
    assert out["proposed"] == ["Clarithromycin"] and out["medications"] == ["Warfarin", "Simvastatin"]
    assert {(b["drug"], b["with"], b["severity"]) for b in out["blocked"]} == {
        ("Clarithromycin", "Warfarin", "major"), ("Clarithromycin", "Simvastatin", "contraindicated")}
    assert "Keep taking your warfarin." in out["text"] and "would treat" not in out["text"]


async def test_a_draft_without_drugs_passes_unchanged(toolbox_factory, tenant) -> None:
    out = await _call(toolbox_factory(), tenant, "medkg.check", {"draft": "Drink water and rest.",
                                                                 "conditions": "asthma"})
    assert out["proposed"] == [] and out["blocked"] == [] and out["text"] == "Drink water and rest."


async def test_lookup_walks_the_graph(toolbox_factory, tenant) -> None:
    out = await _call(toolbox_factory(), tenant, "medkg.lookup", {"names": "Nurofen"})
    [e] = out["entities"]
    assert e["name"] == "Ibuprofen" and e["classes"] == ["NSAID"]
    assert "Peptic ulcer disease" in {c["condition"] for c in e["contraindicated_in"]}
    assert "Warfarin" in {i["with"] for i in e["interacts_with"]} or "Vitamin K antagonist" in {
        i["with"] for i in e["interacts_with"]}


async def test_lab_values_are_flagged_against_reference_ranges(toolbox_factory, tenant) -> None:
    report = ["CITY LAB - BLOOD TEST\nGlucose 180 mg/dL\nPotassium: 4.2 mmol/L\nHaemoglobin 10,5 g/dL\nHbA1c 5.1 %"]
    out = await _call(toolbox_factory(), tenant, "medkg.labs", {"text": report})
    flags = {v["test"]: (v["value"], v["flag"]) for v in out["values"]}
    assert flags == {"glucose": (180.0, "high"), "potassium": (4.2, "normal"), "haemoglobin": (10.5, "low"),
                     "hba1c": (5.1, "normal")}
    assert "Glucose (fasting) 180 mg/dL: HIGH" in out["summary"] and "Potassium" not in out["summary"]
    empty = await _call(toolbox_factory(), tenant, "medkg.labs", {"text": []})
    assert empty == {"values": [], "out_of_range": [], "summary": ""}


async def test_the_review_adds_a_disclaimer_and_escalation_and_blocks_a_diagnosis(toolbox_factory, tenant) -> None:
    box = toolbox_factory()
    ok = await _call(box, tenant, "medkg.review", {"question": "My knee hurts after running.",
                                                   "draft": "Rest and ice usually help."})
    assert ok["verdict"] == "rewritten" and [f["rule"] for f in ok["findings"]] == ["disclaimer_added"]
    assert ok["text"].startswith("Rest and ice") and "not medical advice" in ok["text"]
    red = await _call(box, tenant, "medkg.review", {"question": "I have chest pain and my left arm is numb",
                                                    "draft": "It may be muscular. Try rest."})
    assert [f["rule"] for f in red["findings"]] == ["escalation_added", "disclaimer_added"]
    assert red["text"].startswith("Chest pain can be a heart attack") and red["red_flags"] == ["Chest pain"]
    dx = await _call(box, tenant, "medkg.review", {"question": "What is wrong with me?",
                                                   "draft": "You definitely have pneumonia. Take amoxicillin."})
    assert dx["verdict"] == "blocked" and dx["findings"][0]["rule"] == "definitive_diagnosis"
    assert "pneumonia" not in dx["text"] and "not medical advice" in dx["text"]
    # A condition the patient reported is no diagnosis: "since you have asthma" passes.
    known = await _call(box, tenant, "medkg.review", {
        "question": "Can I take something for a headache?", "conditions": "asthma",
        "draft": "Since you have asthma, paracetamol is usually preferred. This is not medical advice."})
    assert known["verdict"] == "pass"


async def test_oversized_or_wrong_arguments_are_refused_with_the_field(toolbox_factory, tenant) -> None:
    box = toolbox_factory()
    out = await box.executor.invoke(Call(tenant, "medkg.check", {"draft": "x" * 20_001}))
    assert not out.ok and out.error_code == "invalid_arguments" and "draft" in out.error_field + out.error_message
    out = await box.executor.invoke(Call(tenant, "medkg.review", {"draft": "x"}))
    assert not out.ok and out.error_code == "invalid_arguments"
