"""The chat page in real Chromium against a real ``ember serve`` with the bundled model: streaming, Stop,
reload mid-answer, branches, sanitized model output, export/import, and screenshots for the README."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from ember.db.policies import ModelPolicy
from tests.ui.harness import EmberServe, engine_active, log_in_as, model_policy, set_app_setting

MODEL = "smollm2:135m"
ANSWER_WAIT_MS = 90_000
_names = count(1)


@pytest.fixture
def chat_page(chromium: Browser, served: EmberServe) -> Iterator[Page]:
    """The chat page, logged in as a new user, ready (the script has loaded models and chats)."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    yield open_as_new_user(context, served)
    context.close()


def open_as_new_user(context: BrowserContext, served: EmberServe) -> Page:
    log_in_as(served, context, f"chatter{next(_names)}")
    page = context.new_page()
    page.goto(served.url + "/")
    expect(page.locator("body[data-ready=true]")).to_be_attached()
    return page


def set_num_predict(page: Page, tokens: int) -> None:
    page.get_by_role("button", name="Chat settings").click()
    page.locator("#opt-num_predict").fill(str(tokens))
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings")).to_be_hidden()


def send(page: Page, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_role("button", name="Send").click()
    try:  # sent: the question and its answer are on screen (retrieval may take a while on a busy machine)
        expect(page.get_by_label("Message")).to_have_value("", timeout=60_000)
    except AssertionError:
        raise AssertionError(f"not sent; the page says: {page.locator('#alert').inner_text()!r}") from None


def last_answer(page: Page):  # type: ignore[no-untyped-def]
    return page.locator('[data-role="assistant"]').last


def wait_finished(page: Page) -> None:
    expect(page.locator('[data-role="assistant"][data-status="streaming"]')).to_have_count(0, timeout=ANSWER_WAIT_MS)


def wait_engine_idle(served: EmberServe, within: float) -> None:
    deadline = time.monotonic() + within
    while engine_active(served):
        assert time.monotonic() < deadline, "the engine is still generating"
        time.sleep(0.1)


def import_chat(page: Page, tmp_path: Path, export: dict[str, object]) -> None:
    path = tmp_path / "import.json"
    path.write_text(json.dumps(export))
    page.locator("#import-file").set_input_files(str(path))
    expect(page.locator("#chat-title")).to_have_text(str(export["title"]))
    expect(page.locator('[data-role="assistant"]').first).to_be_visible()


def exported(messages: list[tuple[str, str]], title: str = "Imported") -> dict[str, object]:
    """An Ember JSON export of one branch of (role, content) turns."""
    rows, parent = [], None
    for index, (role, content) in enumerate(messages):
        rows.append({"id": f"m{index}", "parent_id": parent, "role": role, "content": content, "status": "done",
                     "created_at": f"2026-01-01T00:00:{index:02d}+00:00"})
        parent = f"m{index}"
    return {"ember_chat_export": 1, "title": title, "model": MODEL, "system": None, "options": {},
            "leaf_id": parent, "messages": rows}


def test_a_streamed_answer_appears_as_markdown(chat_page: Page) -> None:
    page = chat_page
    set_num_predict(page, 24)
    send(page, "Say hello in one short sentence.")
    expect(page.locator('[data-role="user"] .body')).to_have_text("Say hello in one short sentence.")
    wait_finished(page)
    answer = last_answer(page)
    assert answer.get_attribute("data-status") == "done"
    assert answer.locator(".body").inner_text().strip(), "the answer is empty"
    assert "?chat=" in page.url
    # The chat is in the list, and the stored answer is the one on screen.
    expect(page.locator("#chat-list .chat-item")).to_have_count(1)
    shown = answer.locator(".body").inner_text().strip()
    page.reload()
    expect(last_answer(page).locator(".body")).to_have_text(shown)


def test_stop_stops_the_engine(chat_page: Page, served: EmberServe) -> None:
    page = chat_page
    set_num_predict(page, 250)
    send(page, "Write a long story about a dragon who learns to cook.")
    stop = page.get_by_role("button", name="Stop")
    expect(stop).to_be_visible()
    expect(last_answer(page).locator(".body")).not_to_be_empty(timeout=ANSWER_WAIT_MS)
    stop.click()
    expect(last_answer(page)).to_have_attribute("data-status", "stopped", timeout=30_000)
    wait_engine_idle(served, within=10)
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    expect(last_answer(page).locator(".status-note")).to_have_text("Stopped.")


def test_a_reload_mid_answer_follows_it_to_the_end(chat_page: Page) -> None:
    page = chat_page
    set_num_predict(page, 120)
    send(page, "List twenty animals, one per line.")
    expect(last_answer(page).locator(".body")).not_to_be_empty(timeout=ANSWER_WAIT_MS)
    # Compared as the stored markdown: rendered text is not a prefix of itself ("1" becomes a list item "Cat").
    before = stored_answer(page)
    page.reload()
    expect(page.locator("body[data-ready=true]")).to_be_attached()
    # The reloaded page shows the text so far, and then the rest as it comes.
    assert page.locator('[data-role="assistant"]').count() == 1
    expect(last_answer(page).locator(".body")).not_to_be_empty()
    wait_finished(page)
    assert last_answer(page).get_attribute("data-status") == "done"
    assert last_answer(page).locator(".body").inner_text().strip()
    after = stored_answer(page)
    assert after["status"] == "done"
    assert len(after["content"]) >= len(before["content"]) > 0
    assert after["content"].startswith(before["content"])


def stored_answer(page: Page) -> dict[str, str]:
    """The last assistant message of the open chat as the server holds it (with the text so far while live)."""
    chat_id = page.url.split("chat=")[1].split("&")[0]
    response = page.request.get(page.url.split("/?")[0] + f"/ui/api/chats/{chat_id}")
    assert response.ok, response.status
    answers = [m for m in response.json()["messages"] if m["role"] == "assistant"]
    return {"content": answers[-1]["content"], "status": answers[-1]["status"]}


def test_regenerate_and_edit_make_branches_that_can_be_navigated(chat_page: Page) -> None:
    page = chat_page
    set_num_predict(page, 16)
    send(page, "Name a colour.")
    wait_finished(page)
    first = last_answer(page).locator(".body").inner_text()
    last_answer(page).get_by_role("button", name="Regenerate").click()
    expect(last_answer(page).locator(".branch-pos")).to_have_text("2/2")
    wait_finished(page)
    expect(last_answer(page).locator(".branch-pos")).to_have_text("2/2")
    last_answer(page).get_by_role("button", name="Previous branch").click()
    expect(last_answer(page).locator(".branch-pos")).to_have_text("1/2")
    expect(last_answer(page).locator(".body")).to_have_text(first)
    page.reload()  # the branch on screen is the chat's, stored
    expect(last_answer(page).locator(".branch-pos")).to_have_text("1/2")

    user = page.locator('[data-role="user"]')
    user.get_by_role("button", name="Edit").click()
    page.get_by_label("Edit message").fill("Name an animal.")
    page.get_by_role("button", name="Save & submit").click()
    expect(page.locator('[data-role="user"] .body')).to_have_text("Name an animal.")
    wait_finished(page)
    expect(page.locator('[data-role="user"] .branch-pos')).to_have_text("2/2")
    page.locator('[data-role="user"]').get_by_role("button", name="Previous branch").click()
    expect(page.locator('[data-role="user"] .body')).to_have_text("Name a colour.")
    expect(last_answer(page).locator(".branch-pos")).to_have_text("2/2")  # that branch's newest answer


XSS = ['<img src=x onerror="window.__xss=1;alert(1)">',
       "<script>window.__xss=2;alert(2)</script>",
       '<a href="javascript:window.__xss=3">click me</a> and [a link](javascript:alert(3))',
       '<svg onload="window.__xss=4"><circle r=5></circle></svg>',
       "```html\n<script>alert(5)</script>\n```"]


def test_model_output_with_html_renders_inert(chat_page: Page, tmp_path: Path) -> None:
    page = chat_page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    turns: list[tuple[str, str]] = []
    for payload in XSS:
        turns += [("user", "Repeat exactly: " + payload), ("assistant", payload)]
    import_chat(page, tmp_path, exported(turns, "Hostile output"))
    answers = page.locator('[data-role="assistant"]')
    expect(answers).to_have_count(len(XSS))
    for link in answers.locator("a").all():
        link.click(modifiers=["Control"])  # a javascript: link that survived would run now
    page.wait_for_timeout(500)
    assert dialogs == []
    assert page.evaluate("window.__xss") is None
    assert answers.locator("script, [onerror], [onload], svg").count() == 0
    assert answers.locator('a[href^="javascript"]').count() == 0
    # The text itself is kept: user messages show it verbatim, the code block shows the markup as text.
    expect(page.locator('[data-role="user"]').first.locator(".body")).to_contain_text("<img src=x onerror=")
    expect(answers.last.locator("pre code")).to_contain_text("<script>alert(5)</script>")


def test_export_and_import_round_trip(chat_page: Page, tmp_path: Path) -> None:
    page = chat_page
    turns = [("user", "What is 2+2?"), ("assistant", "It is **4**.\n\n```python\nprint(2 + 2)\n```")]
    import_chat(page, tmp_path, exported(turns, "Arithmetic"))
    expect(page.locator("#chat-title")).to_have_text("Arithmetic")
    page.locator("#chat-menu summary").click()
    with page.expect_download() as json_download:
        page.get_by_role("link", name="Export JSON").click()
    data = json.loads(Path(json_download.value.path()).read_text())
    assert [m["content"] for m in data["messages"]] == [c for _, c in turns]
    page.locator("#chat-menu summary").click()
    with page.expect_download() as md_download:
        page.get_by_role("link", name="Export Markdown").click()
    markdown = Path(md_download.value.path()).read_text()
    assert "What is 2+2?" in markdown and "print(2 + 2)" in markdown

    again = tmp_path / "again.json"
    again.write_text(json.dumps(data))
    first_url = page.url
    page.locator("#import-file").set_input_files(str(again))
    expect(page).not_to_have_url(first_url)
    expect(page.locator("#chat-list .chat-item")).to_have_count(2)
    expect(page.locator('[data-role="user"] .body')).to_have_text("What is 2+2?")
    expect(last_answer(page).locator("strong")).to_have_text("4")
    expect(last_answer(page).locator("pre code.hljs")).to_contain_text("print(2 + 2)")
    expect(last_answer(page).get_by_role("button", name="Copy").first).to_be_visible()


def test_chat_list_search_rename_and_delete(chat_page: Page, tmp_path: Path) -> None:
    page = chat_page
    import_chat(page, tmp_path, exported([("user", "Tell me about owls"), ("assistant", "Owls hunt at night.")],
                                         "Owls"))
    import_chat(page, tmp_path, exported([("user", "Tell me about bees"), ("assistant", "Bees make honey.")],
                                         "Bees"))
    items = page.locator("#chat-list .chat-item")
    expect(items).to_have_count(2)
    page.get_by_label("Search chats").fill("honey")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("Bees")
    page.get_by_label("Search chats").fill("")
    expect(items).to_have_count(2)

    page.get_by_role("button", name="Rename Owls").click()
    page.get_by_label("Chat title").fill("Night birds")
    page.get_by_label("Chat title").press("Enter")
    expect(items.filter(has_text="Night birds")).to_have_count(1)

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete Night birds").click()
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("Bees")


def test_screenshots_of_the_chat_page(chromium: Browser, served: EmberServe, tmp_path: Path, shots: Path) -> None:
    turns = [("user", "How do I read a file line by line in Python?"),
             ("assistant", "Open it with a `with` block and iterate over the file object:\n\n```python\n"
                           "with open(\"notes.txt\", encoding=\"utf-8\") as handle:\n    for line in handle:\n"
                           "        print(line.rstrip())\n```\n\nThe file is closed when the block ends, even on "
                           "errors. For **large files** this reads one line at a time, so memory stays flat."),
             ("user", "And count the lines?"),
             ("assistant", "Use `sum` over the lines:\n\n```python\nwith open(\"notes.txt\") as handle:\n"
                           "    total = sum(1 for _ in handle)\n```")]
    for name, viewport in (("chat-desktop.png", {"width": 1280, "height": 800}),
                           ("chat-phone.png", {"width": 390, "height": 844})):
        context = chromium.new_context(viewport=viewport, color_scheme="light")
        page = open_as_new_user(context, served)
        import_chat(page, tmp_path, exported(turns[:2], "Counting words"))
        import_chat(page, tmp_path, exported(turns, "Reading files in Python"))
        expect(page.locator("pre code.hljs").first).to_be_visible()
        page.get_by_label("Message").fill("Can I do it without a loop?")
        page.screenshot(path=str(shots / name))
        context.close()


def test_the_page_fits_a_phone_and_its_chat_list_slides_in(chromium: Browser, served: EmberServe,
                                                           tmp_path: Path) -> None:
    context = chromium.new_context(viewport={"width": 360, "height": 740})
    page = open_as_new_user(context, served)
    import_chat(page, tmp_path, exported([("user", "A question"), ("assistant", "An answer")], "Phone chat"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # nothing sticks out sideways
    expect(page.get_by_role("button", name="New chat")).not_to_be_in_viewport()
    page.get_by_role("button", name="Open chat list").click()
    expect(page.get_by_role("button", name="New chat")).to_be_in_viewport()
    page.get_by_role("button", name="New chat").click()
    expect(page.get_by_role("button", name="New chat")).not_to_be_in_viewport()
    expect(page.locator("#chat-title")).to_have_text("New chat")
    expect(page.get_by_label("Message")).to_be_in_viewport()
    expect(page.get_by_role("button", name="Send")).to_be_in_viewport()
    context.close()


def test_a_refused_request_is_shown_with_the_servers_reason(chat_page: Page, tmp_path: Path) -> None:
    page = chat_page
    wrong = tmp_path / "not-an-export.json"
    wrong.write_text(json.dumps({"hello": "world"}))
    page.locator("#import-file").set_input_files(str(wrong))
    expect(page.get_by_role("alert")).to_contain_text("not an Ember chat export")
    expect(page.locator("#chat-list .chat-item")).to_have_count(0)


def documents_served(page: Page, served: EmberServe) -> bool:
    return page.request.get(served.url + "/ui/api/collections").status == 200


def test_an_attached_document_is_indexed_and_the_answer_cites_it(chat_page: Page, served: EmberServe,
                                                                   tmp_path: Path, shots: Path) -> None:
    page = chat_page
    if not documents_served(page, served):
        pytest.skip("this server has no documents API (/ui/api/collections)")
    set_app_setting(served, "embed_model", MODEL)
    facts = tmp_path / "zorblat.txt"
    facts.write_text("The zorblat is a small blue bird that lives only on Mount Kelvor.\n\n"
                     "Zorblats eat juniper berries and sing at dawn.\n" * 3)
    set_num_predict(page, 24)
    page.locator("#attach").set_input_files(str(facts))
    chip = page.locator("#attachments .chip")
    expect(chip).to_contain_text("zorblat.txt")
    expect(chip).to_have_attribute("data-status", "ready", timeout=ANSWER_WAIT_MS)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    send(page, "What colour is the zorblat?")
    wait_finished(page)
    source = last_answer(page).locator(".source").first
    expect(source).to_contain_text("[1]")
    page.screenshot(path=str(shots / "chat-cited.png"))
    source.click()
    expect(page.locator("#source-dialog")).to_be_visible()
    expect(page.locator("#source-text")).to_contain_text("zorblat")


def test_an_unsupported_upload_is_refused_visibly(chat_page: Page, served: EmberServe, tmp_path: Path) -> None:
    page = chat_page
    if not documents_served(page, served):
        pytest.skip("this server has no documents API (/ui/api/collections)")
    fake = tmp_path / "picture.txt"  # a PNG under a text name: the type is checked by content
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    page.locator("#attach").set_input_files(str(fake))
    expect(page.get_by_role("alert")).to_contain_text("picture.txt")
    expect(page.locator("#attachments .chip")).to_have_count(0)


def test_send_waits_for_indexing_and_a_source_opens_its_text(chat_page: Page, tmp_path: Path) -> None:
    """The page's own logic at the edges that real indexing passes too fast to see: here page.route answers the
    documents API (the real one is exercised by the tests above)."""
    page = chat_page
    progress = {"status": "indexing", "chunks_done": 1}

    def document() -> dict[str, object]:
        return {"id": "d1", "name": "notes.txt", "media_type": "text/plain", "size": 120, "error": None,
                "chunks_total": 4, "chat_id": None, "collection": None, "created_at": "2026-01-01T00:00:00+00:00",
                **progress}

    def documents_api(route: Route) -> None:
        url = route.request.url
        if "/chunks/" in url:
            route.fulfill(json={"document_id": "d1", "name": "notes.txt", "ordinal": 2,
                                "text": "Zorblats sing at dawn."})
        elif route.request.method == "POST":
            route.fulfill(status=202, json=document())
        elif "chat_id=" in url:
            route.fulfill(json={"documents": []})
        else:
            route.fulfill(json=document())

    page.route("**/ui/api/documents**", documents_api)
    notes = tmp_path / "notes.txt"
    notes.write_text("Zorblats sing at dawn.")
    page.locator("#attach").set_input_files(str(notes))
    chip = page.locator("#attachments .chip")
    expect(chip).to_contain_text("indexing 1/4")
    page.get_by_label("Message").fill("When do zorblats sing?")
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    progress.update(status="ready", chunks_done=4)
    expect(chip).to_contain_text("ready")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()

    cited = exported([("user", "When do zorblats sing?"), ("assistant", "At dawn [1].")], "Cited")
    cited["messages"][1]["citations"] = [  # type: ignore[index]
        {"n": 1, "document_id": "d1", "name": "notes.txt", "ordinal": 2, "snippet": "Zorblats sing"}]
    import_chat(page, tmp_path, cited)
    last_answer(page).get_by_role("button", name="[1] notes.txt").click()
    expect(page.locator("#source-dialog")).to_be_visible()
    expect(page.locator("#source-text")).to_have_text("Zorblats sing at dawn.")
    expect(page.locator("#source-title")).to_contain_text("notes.txt")


def test_settings_show_the_admins_defaults_and_locked_options(chromium: Browser, served: EmberServe) -> None:
    policy = ModelPolicy(model=MODEL, defaults={"temperature": 0.3, "top_k": 20}, locked=frozenset({"temperature"}))
    with model_policy(served, policy):
        context = chromium.new_context(viewport={"width": 1280, "height": 800})
        page = open_as_new_user(context, served)
        page.get_by_role("button", name="Chat settings").click()
        temperature = page.locator("#opt-temperature")
        expect(temperature).to_be_disabled()
        expect(temperature).to_have_value("0.3")
        expect(page.locator("label.option.locked")).to_contain_text("Temperature (locked)")
        expect(page.locator("#opt-top_k")).to_be_enabled()
        expect(page.locator("#opt-top_k")).to_have_attribute("placeholder", "20")
        expect(page.locator("#settings-hint")).to_contain_text("Locked by the admin")
        # What the user may set is kept for the chat and used for its answers.
        page.locator("#opt-num_predict").fill("8")
        page.get_by_role("button", name="Save settings").click()
        send(page, "Hi")
        wait_finished(page)
        chat_id = page.url.split("chat=")[1]
        chat = page.request.get(f"{served.url}/ui/api/chats/{chat_id}").json()
        assert chat["options"] == {"num_predict": 8}
        context.close()


def test_a_second_tab_follows_the_same_answer(chat_page: Page) -> None:
    page = chat_page
    set_num_predict(page, 100)
    send(page, "Count from one to thirty in words.")
    expect(last_answer(page).locator(".body")).not_to_be_empty(timeout=ANSWER_WAIT_MS)
    second = page.context.new_page()
    second.goto(page.url)
    expect(second.locator('[data-role="assistant"]')).to_have_count(1)
    wait_finished(page)
    wait_finished(second)
    assert last_answer(second).locator(".body").inner_text() == last_answer(page).locator(".body").inner_text()


def test_the_copy_button_copies_a_code_block(chromium: Browser, served: EmberServe, tmp_path: Path) -> None:
    context = chromium.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = open_as_new_user(context, served)
    import_chat(page, tmp_path, exported([("user", "Code?"), ("assistant", "```sh\necho copied-text\n```")], "Code"))
    copy = last_answer(page).locator("pre .copy-code")
    expect(copy).to_have_text("Copy")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()").strip() == "echo copied-text"
    context.close()


def test_the_chat_page_transfers_under_300_kb(chromium: Browser, served: EmberServe) -> None:
    context = chromium.new_context()
    log_in_as(served, context, f"chatter{next(_names)}")
    page = context.new_page()
    loaded: list[str] = []
    page.on("requestfinished", lambda request: loaded.append(request.url))
    page.goto(served.url + "/")
    expect(page.locator("body[data-ready=true]")).to_be_attached()
    page.wait_for_load_state("networkidle")
    statics = [url for url in loaded if "/static/" in url or url.rstrip("/") == served.url]
    assert any(url.endswith("/static/chat/app.js") for url in statics)
    # Sizes on the wire: Playwright hands bodies back decoded, so a gzip-encoded one is compressed again as the
    # server does it (level 9); asked for again so the browser cache does not hide any.
    total = 0
    for url in set(statics):
        response = page.request.get(url, headers={"Accept-Encoding": "gzip"})
        assert response.ok, url
        encoded = response.headers.get("content-encoding") == "gzip"
        total += len(gzip.compress(response.body())) if encoded else len(response.body())
    print(f"chat page: {len(set(statics))} files, {total / 1024:.0f} KB gzipped")
    assert total < 300 * 1024
    context.close()
