"""Knowledge features of issue 20 in-process against the REAL Postgres+pgvector (hashing
embedder, as test_rag_pipeline.py): Dify's metadata operators and "or" logic, archived
documents not retrieved (and un-archiving keeps `enabled`), one segment by id, datasets listed
by id (a tag's), and parent-child chunking: a child matches, its parent comes back."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import test_rag_pipeline as pipeline  # its in-process harness, beside this file

from loom_rag.domain.chunking import ChunkingConfig
from loom_rag.domain.errors import InvalidArgument, NotFound
from loom_rag.domain.models import MetadataFilter, RetrievalQuery, SearchMethod
from loom_rag.management import Source

rag, tenant = pipeline.rag, pipeline.tenant  # the fixture and its helper

pytestmark = pytest.mark.integration


async def _three_reports(rag) -> tuple[str, str, list]:
    t = tenant()
    ds = await rag.m.create_dataset(t, name="reports")
    docs = []
    for i, (lang, author) in enumerate([("en", "Ada Lovelace"), ("fr", "Blaise Pascal"), ("en", "")]):
        docs.append(await rag.m.create_document(
            t, ds.id, name=f"r{i}.txt", source=Source(text=f"Harbour report {i} boats"),
            metadata={"lang": lang, "year": 2020 + i, "author": author}))
    await rag.drain()
    return t, ds.id, docs


async def test_difys_operators_and_or_logic(rag) -> None:
    t, ds, _ = await _three_reports(rag)

    async def names(*filters, logic: str = "and") -> set[str]:
        q = RetrievalQuery(t, [ds], "harbour boats", top_k=10, filters=list(filters), filter_logic=logic)
        return {h.document_name for h in await rag.retriever.retrieve(q)}

    assert await names(MetadataFilter("lang", "not_in", ["fr"])) == {"r0.txt", "r2.txt"}
    assert await names(MetadataFilter("author", "not_contains", "Pascal")) == {"r0.txt", "r2.txt"}
    assert await names(MetadataFilter("author", "starts_with", "Ada")) == {"r0.txt"}
    assert await names(MetadataFilter("author", "ends_with", "Pascal")) == {"r1.txt"}
    assert await names(MetadataFilter("author", "empty", None)) == {"r2.txt"}
    assert await names(MetadataFilter("author", "not_empty", None)) == {"r0.txt", "r1.txt"}
    assert await names(MetadataFilter("missing", "empty", None)) == {"r0.txt", "r1.txt", "r2.txt"}
    assert await names(MetadataFilter("year", "ge", 2021)) == {"r1.txt", "r2.txt"}
    assert await names(MetadataFilter("year", "le", 2021)) == {"r0.txt", "r1.txt"}
    assert await names(MetadataFilter("year", "ge", 2021), MetadataFilter("lang", "eq", "en")) == {"r2.txt"}
    assert await names(MetadataFilter("year", "eq", 2020), MetadataFilter("lang", "eq", "fr"),
                       logic="or") == {"r0.txt", "r1.txt"}
    for method in (SearchMethod.VECTOR, SearchMethod.FULL_TEXT):  # each search applies them
        q = RetrievalQuery(t, [ds], "harbour boats", method=method, top_k=10, filter_logic="or",
                           filters=[MetadataFilter("lang", "eq", "fr"), MetadataFilter("year", "eq", 2022)])
        assert {h.document_name for h in await rag.retriever.retrieve(q)} == {"r1.txt", "r2.txt"}
    with pytest.raises(InvalidArgument, match="filter_logic"):
        await names(MetadataFilter("lang", "eq", "en"), logic="xor")
    with pytest.raises(InvalidArgument, match="value_json"):
        await names(MetadataFilter("lang", "not_in", "fr"))


async def test_archived_documents_are_not_retrieved_and_unarchive_keeps_enabled(rag) -> None:
    t, ds, docs = await _three_reports(rag)

    async def count() -> int:
        return len(await rag.retriever.retrieve(RetrievalQuery(t, [ds], "harbour boats", top_k=10)))

    archived = await rag.m.set_documents_archived(t, ds, [docs[0].id], True)
    assert archived[0].archived and archived[0].enabled and await count() == 2
    await rag.m.set_documents_enabled(t, ds, [docs[0].id], True)  # enabling does not un-archive
    assert await count() == 2
    await rag.m.set_documents_enabled(t, ds, [docs[1].id], False)
    await rag.m.set_documents_archived(t, ds, [docs[0].id, docs[1].id], False)
    assert await count() == 2  # r1 is still disabled
    assert not (await rag.m.get_document(t, ds, docs[1].id)).enabled
    with pytest.raises(NotFound):
        await rag.m.set_documents_archived(tenant(), ds, [docs[0].id], True)  # another tenant's


async def test_one_segment_by_id_and_datasets_by_id(rag) -> None:
    t, ds, docs = await _three_reports(rag)
    seg = (await rag.m.list_segments(t, ds, docs[0].id)).items[0]
    got = await rag.m.get_segment(t, ds, docs[0].id, seg.id)
    assert got.id == seg.id and got.content == seg.content
    with pytest.raises(NotFound):
        await rag.m.get_segment(tenant(), ds, docs[0].id, seg.id)
    with pytest.raises(NotFound):
        await rag.m.get_segment(t, ds, docs[1].id, seg.id)  # not that document's
    other = await rag.m.create_dataset(t, name="other")
    assert [d.id for d in (await rag.m.list_datasets(t, ids=[other.id])).items] == [other.id]
    assert (await rag.m.list_datasets(t, ids=[])).total == 0
    assert (await rag.m.list_datasets(t)).total == 2
    assert (await rag.m.list_datasets(tenant(), ids=[other.id])).total == 0


async def test_a_child_chunk_matches_and_its_parent_comes_back(rag) -> None:
    t = tenant()
    rule = ChunkingConfig(mode="hierarchical", parent_mode="paragraph", max_tokens=30, subchunk_max_tokens=12,
                          separators=["\n\n", ""], chunk_overlap=0, subchunk_separators=[". ", ""])
    ds = await rag.m.create_dataset(t, name="parent-child", process_rule=rule)
    text = ("Glaciers carve valleys over millennia. Moraines mark where the ice stopped. "
            "Meltwater feeds braided rivers downstream.\n\n"
            "Volcanoes vent magma through the crust. Basalt cools into hexagonal columns.")
    doc = await rag.m.create_document(t, ds.id, name="earth.txt", source=Source(text=text))
    await rag.drain()
    segs = (await rag.m.list_segments(t, ds.id, doc.id, limit=100)).items
    assert len(segs) > 2 and all(s.parent_content for s in segs)
    hits = await rag.retriever.retrieve(RetrievalQuery(t, [ds.id], "basalt hexagonal columns", top_k=1,
                                                       method=SearchMethod.FULL_TEXT))
    assert "Basalt" in hits[0].content and "Glaciers" not in hits[0].parent_content
    assert hits[0].parent_content.startswith("Volcanoes vent magma") and len(hits[0].parent_content) > len(
        hits[0].content)


async def test_new_document_metadata_replaces_the_old_on_its_chunks(rag) -> None:
    t, ds, docs = await _three_reports(rag)
    await rag.m.create_segments(t, ds, docs[0].id, [("Harbour boats extra note.", {"source": "manual"})])
    await rag.m.update_document(t, ds, docs[0].id, metadata={"language": "en"})  # "lang" renamed, "year" gone

    async def names(f: MetadataFilter) -> set[str]:
        q = RetrievalQuery(t, [ds], "harbour boats", top_k=10, filters=[f])
        return {h.segment_id for h in await rag.retriever.retrieve(q)}

    segs = {s.id: s for s in (await rag.m.list_segments(t, ds, docs[0].id)).items}
    assert not (await names(MetadataFilter("lang", "eq", "en"))) & set(segs)
    assert not (await names(MetadataFilter("year", "eq", 2020))) & set(segs)
    assert set(segs) <= await names(MetadataFilter("language", "eq", "en"))
    assert {s.metadata.get("source") for s in segs.values()} == {None, "manual"}  # a segment's own key stays


async def test_child_chunks_of_a_parent_listed_and_added(rag) -> None:
    t = tenant()
    rule = ChunkingConfig(mode="hierarchical", parent_mode="paragraph", max_tokens=30, subchunk_max_tokens=12,
                          separators=["\n\n", ""], chunk_overlap=0, subchunk_separators=[". ", ""])
    ds = await rag.m.create_dataset(t, name="children", process_rule=rule)
    doc = await rag.m.create_document(t, ds.id, name="earth.txt", source=Source(text=(
        "Glaciers carve valleys over millennia. Moraines mark where the ice stopped.\n\n"
        "Volcanoes vent magma through the crust. Basalt cools into hexagonal columns.")))
    await rag.drain()
    every = (await rag.m.list_segments(t, ds.id, doc.id, limit=100)).items
    volcano = next(s for s in every if "Basalt" in s.content)
    siblings = (await rag.m.list_segments(t, ds.id, doc.id, children_of=volcano.id)).items
    assert volcano.id in {s.id for s in siblings} and all(s.parent_content == volcano.parent_content
                                                          for s in siblings)
    assert len(siblings) < len(every)
    [added] = await rag.m.create_segments(t, ds.id, doc.id, [("Obsidian is volcanic glass.", None)],
                                          children_of=volcano.id)
    assert added.parent_content == volcano.parent_content
    hits = await rag.retriever.retrieve(RetrievalQuery(t, [ds.id], "obsidian volcanic glass", top_k=1,
                                                       method=SearchMethod.FULL_TEXT))
    assert hits[0].segment_id == added.id and hits[0].parent_content == volcano.parent_content
    plain = await rag.m.create_dataset(t, name="plain")
    pdoc = await rag.m.create_document(t, plain.id, name="p.txt", source=Source(text="Just text."))
    await rag.drain()
    pseg = (await rag.m.list_segments(t, plain.id, pdoc.id)).items[0]
    with pytest.raises(InvalidArgument, match="children_of"):
        await rag.m.list_segments(t, plain.id, pdoc.id, children_of=pseg.id)
