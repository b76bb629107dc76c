"""The documents API against a real engine: uploads of each type indexed through /api/embed on the bundled
model, progress, refusals (size, type by content, unreadable files) that leave nothing behind, retrieval with
citations in a chat answer, and one user's ids answering 404 to another."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from ember.db import Database
from ember.db.app_settings import get_setting, set_setting
from ember.db.documents import NewDocument, create_document, get_document, mark_failed
from ember.db.users import get_user
from ember.web.documents import index
from tests.conftest import BUNDLED
from tests.gateway.harness import RunningWeb
from tests.web.chat_helpers import new_chat, send, wait_status
from tests.web.documents_helpers import upload, uploaded, wait_indexed
from tests.web.harness import Browser
from tests.web.pdf_maker import make_pdf

BrowserFor = Callable[[str], Browser]
pytestmark = pytest.mark.usefixtures("no_model_titles")
FACTS = {
    "harbour": "The harbour master of Tromsø is named Ingrid Solberg and she works on Tuesdays.",
    "bakery": "The bakery on Storgata sells cardamom buns for 38 kroner each morning.",
    "volcano": "Mount Etna erupted in 2021 and its lava flows reached the village of Milo.",
    "chess": "Magnus won the regional chess tournament by playing the Sicilian Defence.",
}


def _filler(topic: str, sentences: int = 14) -> str:
    return " ".join(f"This line about {topic} is number {i} and carries no particular fact." for i in range(sentences))


def test_each_type_is_indexed_to_ready_with_real_embeddings(browser_for: BrowserFor) -> None:
    browser = browser_for("user")
    chat = new_chat(browser)
    files = {
        "notes.txt": b"Plain notes.\n\nThe ferry leaves at 07:15 from quay 3.",
        "guide.md": "# Guide\n\nThe **café** opens at nine.".encode(),
        "ships.pdf": make_pdf([["The Nordlys sails north."], ["The Lofoten sails south."]]),
        "page.html": b"<!doctype html><html><head><script>alert(1)</script></head><body><p>Lighthouse "
                     b"keepers log the weather.</p></body></html>",
    }
    expected = {"notes.txt": ("text/plain", "07:15"), "guide.md": ("text/markdown", "café"),
                "ships.pdf": ("application/pdf", "Lofoten"), "page.html": ("text/html", "Lighthouse")}
    started = {name: uploaded(browser, name, data, chat_id=chat["id"]) for name, data in files.items()}
    for name, document in started.items():
        assert document["status"] == "indexing" and document["chat_id"] == chat["id"], document
        assert document["size"] == len(files[name]) and document["chunks_total"] >= 1
        done = wait_indexed(browser, document["id"])
        assert done["status"] == "ready", done
        assert done["chunks_done"] == done["chunks_total"] and done["media_type"] == expected[name][0]
        chunk = browser.get(f"/ui/api/documents/{document['id']}/chunks/0").json()
        assert expected[name][1] in chunk["text"] and chunk["name"] == name
    assert "alert" not in browser.get(f"/ui/api/documents/{started['page.html']['id']}/chunks/0").json()["text"]
    listed = browser.get("/ui/api/documents", params={"chat_id": chat["id"]}).json()["documents"]
    assert [d["name"] for d in listed] == list(files)


def test_vectors_are_stored_and_progress_advances(browser_for: BrowserFor, web_db: Database,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index, "BATCH", 2)  # small batches: several progress steps from a short document
    browser = browser_for("user")
    text = "\n\n".join(_filler(f"topic {p}") for p in range(6)).encode()  # 6 passages, 3 batches
    document = uploaded(browser, "long.txt", text, collection="progress")
    seen: list[int] = []
    deadline = time.monotonic() + 300
    while True:
        now = browser.get(f"/ui/api/documents/{document['id']}").json()
        seen.append(now["chunks_done"])
        if now["status"] != "indexing":
            break
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert now["status"] == "ready" and now["chunks_total"] >= 5, now["error"]
    assert seen == sorted(seen), seen  # progress only moves forward
    assert any(0 < n < now["chunks_total"] for n in seen), seen  # and is seen between batches
    with web_db.engine.connect() as connection:
        from sqlalchemy import text as sql

        rows = connection.execute(sql("SELECT dims, length(embedding) FROM chunks WHERE document_id = :d"),
                                  {"d": document["id"]}).all()
    assert len(rows) == now["chunks_total"]
    assert all(dims > 0 and size == 4 * dims for dims, size in rows)  # float32 vectors of the model's width
    collections = browser.get("/ui/api/collections").json()["collections"]
    assert collections == [{"name": "progress", "documents": 1}]


def test_an_answer_cites_the_passage_with_the_fact(browser_for: BrowserFor) -> None:
    browser = browser_for("user")
    chat = new_chat(browser, num_predict=16)
    sections = [f"{fact} {_filler(topic, 10)}" for topic, fact in FACTS.items()]
    sections += [_filler(f"weather {i}", 12) for i in range(2)]
    document = uploaded(browser, "facts.md", "\n\n".join(sections).encode(), chat_id=chat["id"])
    ready = wait_indexed(browser, document["id"])
    assert ready["status"] == "ready" and ready["chunks_total"] > 4  # more passages than are cited

    turn = send(browser, chat["id"], "Who is the harbour master of Tromsø?")
    citations: list[dict[str, Any]] = turn["assistant"]["citations"]
    assert [c["n"] for c in citations] == list(range(1, len(citations) + 1)) and 1 <= len(citations) <= 4
    assert all(c["document_id"] == document["id"] and c["name"] == "facts.md" for c in citations)
    cited = [browser.get(f"/ui/api/documents/{document['id']}/chunks/{c['ordinal']}").json()["text"]
             for c in citations]
    assert any("Ingrid Solberg" in text for text in cited), cited
    assert all(c["snippet"][:40] in " ".join(t.split()) for c, t in zip(citations, cited, strict=True))
    done = wait_status(browser, chat["id"], turn["assistant"]["id"], within=300)  # ~1k prompt tokens on 2 cores
    assert done["status"] == "done" and done["citations"] == citations


def test_sending_while_a_document_indexes_is_409(browser_for: BrowserFor, web_db: Database) -> None:
    browser = browser_for("user")
    chat = new_chat(browser, num_predict=4)
    user = get_user(web_db, browser.user_name)
    assert user is not None
    pending = create_document(web_db, user.id, NewDocument(name="slow.pdf", media_type="application/pdf", size=1,
                                                           sha256="0" * 64, chunks_total=3, embed_model=BUNDLED,
                                                           chat_id=chat["id"]))
    refused = browser.post(f"/ui/api/chats/{chat['id']}/messages", json={"content": "Summarize it"})
    assert refused.status_code == 409 and "slow.pdf" in refused.json()["error"], refused.text
    assert browser.get(f"/ui/api/chats/{chat['id']}").json()["messages"] == []
    mark_failed(web_db, pending.id, "test")  # a failed document is skipped, not waited for
    assert not send(browser, chat["id"], "Summarize it")["assistant"]["citations"]


def test_a_fresh_upload_blocks_the_chat_until_it_is_ready(browser_for: BrowserFor) -> None:
    browser = browser_for("user")
    chat = new_chat(browser, num_predict=4)
    text = "\n\n".join(_filler(f"part {p}") for p in range(4)).encode()
    document = uploaded(browser, "big.txt", text, chat_id=chat["id"])
    refused = browser.post(f"/ui/api/chats/{chat['id']}/messages", json={"content": "What is in it?"})
    assert refused.status_code == 409, refused.text  # right after the upload the passages are not searchable
    assert wait_indexed(browser, document["id"])["status"] == "ready"
    assert send(browser, chat["id"], "What is in it?")["assistant"]["citations"]


def test_oversized_upload_is_413_and_keeps_nothing(ui: RunningWeb, browser_for: BrowserFor) -> None:
    browser = browser_for("user")
    limit = ui.settings.upload_max_bytes
    refused = upload(browser, "huge.txt", b"a" * (limit + 1), collection="big")
    assert refused.status_code == 413 and "EMBER_UPLOAD_MAX_BYTES" in refused.json()["error"], refused.text
    far = upload(browser, "huger.txt", b"a" * (limit + (1 << 20)), collection="big")
    assert far.status_code == 413
    assert browser.get("/ui/api/documents").json()["documents"] == []


@pytest.mark.parametrize(("name", "data"), [
    ("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200)),
    ("archive.md", b"PK\x03\x04" + bytes(range(256)) * 4),
    ("notes.txt", "UTF-16 text".encode("utf-16")),
])
def test_wrong_type_by_content_is_415(browser_for: BrowserFor, name: str, data: bytes) -> None:
    browser = browser_for("user")
    refused = upload(browser, name, data, content_type="text/plain", collection="c")
    assert refused.status_code == 415 and "UTF-8 text" in refused.json()["error"], refused.text
    assert browser.get("/ui/api/documents").json()["documents"] == []


@pytest.mark.parametrize(("data", "reason"), [
    (make_pdf([["a page cut short"]])[:250], "damaged"),
    (make_pdf([["locked"]], password="pw"), "encrypted"),
    (make_pdf([[]]), "no text"),
    (b"\n\n   \n", "no text"),
])
def test_unreadable_file_is_400_with_the_reason_and_keeps_nothing(browser_for: BrowserFor, data: bytes,
                                                                  reason: str) -> None:
    browser = browser_for("user")
    refused = upload(browser, "file.pdf", data, collection="c")
    assert refused.status_code == 400 and reason in refused.json()["error"], refused.text
    assert browser.get("/ui/api/documents").json()["documents"] == []
    assert browser.get("/ui/api/collections").json()["collections"] == []


def test_bad_targets_are_refused(browser_for: BrowserFor) -> None:
    browser = browser_for("user")
    chat = new_chat(browser)
    both = upload(browser, "a.txt", b"text", chat_id=chat["id"], collection="c")
    neither = upload(browser, "a.txt", b"text")
    assert both.status_code == 400 and neither.status_code == 400 and "chat_id" in neither.json()["error"]
    missing_file = browser.post("/ui/api/documents", data={"collection": "c"}, files={"other": ("x", b"y")})
    assert missing_file.status_code == 400 and '"file"' in missing_file.json()["error"]
    no_csrf = browser.client.post("/ui/api/documents", files={"file": ("a.txt", b"text")}, data={"collection": "c"})
    assert no_csrf.status_code == 403


def test_embedding_failure_marks_failed_without_chunks(browser_for: BrowserFor, web_db: Database) -> None:
    browser = browser_for("user")
    before = get_setting(web_db, "embed_model", None)
    set_setting(web_db, "embed_model", "no-such-model:1b")
    try:
        document = uploaded(browser, "x.txt", b"Some text to embed.", collection="broken")
    finally:
        set_setting(web_db, "embed_model", before)
    failed = wait_indexed(browser, document["id"])
    assert failed["status"] == "failed" and "no-such-model" in failed["error"] and failed["chunks_done"] == 0
    assert browser.get(f"/ui/api/documents/{document['id']}/chunks/0").status_code == 404


def test_delete_removes_the_document_and_its_chunks(browser_for: BrowserFor, web_db: Database) -> None:
    browser = browser_for("user")
    document = wait_indexed(browser, uploaded(browser, "gone.txt", b"Soon deleted.", collection="tmp")["id"])
    assert browser.send("DELETE", f"/ui/api/documents/{document['id']}").status_code == 204
    assert browser.get(f"/ui/api/documents/{document['id']}").status_code == 404
    assert browser.get(f"/ui/api/documents/{document['id']}/chunks/0").status_code == 404
    with web_db.engine.connect() as connection:
        from sqlalchemy import text as sql

        left = connection.execute(sql("SELECT count(*) FROM chunks WHERE document_id = :d"), {"d": document["id"]})
        assert left.scalar() == 0


def test_another_users_ids_are_404_on_every_route(browser_for: BrowserFor, web_db: Database) -> None:
    owner, other = browser_for("user"), browser_for("user")
    chat = new_chat(owner, num_predict=4)
    document = wait_indexed(owner, uploaded(owner, "private.txt", b"Owner's secret plan.", chat_id=chat["id"])["id"])
    doc_id = document["id"]
    other_chat = new_chat(other, num_predict=4)
    for response in (
        other.get(f"/ui/api/documents/{doc_id}"),
        other.get(f"/ui/api/documents/{doc_id}/chunks/0"),
        other.send("DELETE", f"/ui/api/documents/{doc_id}"),
        other.get("/ui/api/documents", params={"chat_id": chat["id"]}),
        upload(other, "mine.txt", b"text", chat_id=chat["id"]),
        other.post(f"/ui/api/chats/{other_chat['id']}/messages", json={"content": "tell", "document_ids": [doc_id]}),
    ):
        assert response.status_code == 404, (response.request.url, response.text)
        assert "Owner's secret" not in response.text
    for response in (other.get("/ui/api/documents/not-an-id"), other.get(f"/ui/api/documents/{doc_id}/chunks/x")):
        assert response.status_code == 404
    assert other.get("/ui/api/documents").json()["documents"] == []
    assert other.get("/ui/api/collections").json()["collections"] == []
    owner_id = get_user(web_db, owner.user_name)
    assert owner_id is not None and get_document(web_db, owner_id.id, doc_id).status == "ready"  # untouched
