"""The review page (`genresort web`): what it lists and serves, its security rules (CSRF, token, loopback, audio only
from the configured folders), a person's decisions through it; and the page in a real browser (Debian's chromium,
driven by selenium) on a real `genresort web` process: play a file, assign a genre, undo it."""

from __future__ import annotations

import hashlib
import html
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from mutagen.id3 import ID3, TIT2
from starlette.testclient import TestClient

from conftest import Snapshot, unavailable, write_mp3
from daemon_harness import Daemon, Folders, drop
from genresort.config import ConfigError, Settings, load_settings
from genresort.library.journal import Journal, Step
from genresort.library.lock import InstanceLock, MovesLock
from genresort.service.startup import FOLDER_KEYS
from genresort.service.web import make_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "review-page.png"


def unsure_files(root: Path, count: int = 1, music_threshold: float = 0.0) -> Folders:
    """Real MP3s with a title, dropped into an inbox and sorted by `genresort sort` with nothing sure enough: all
    in unsure/ (or, with music_threshold=1, in not-music/), tagged with their top 3; and a file that is no audio,
    quarantined with its reason."""
    folders = Folders(root)
    (folders.inbox / "broken.mp3").write_bytes(b"no audio in here" * 100)
    for number in range(count):
        path = write_mp3(folders.inbox / f"Night Train {number}.mp3", seconds=6, seed=number)
        tags = ID3()
        tags.add(TIT2(encoding=3, text=[f"Night Train {number}"]))
        tags.save(path, v2_version=4)
    result = subprocess.run(
        [sys.executable, "-m", "genresort.cli", "sort"],
        env=folders.env(confidence_threshold=1.0, music_threshold=music_threshold),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr  # 1: a file was quarantined
    placed = folders.not_music if music_threshold == 1.0 else folders.unsure
    assert len(list(placed.glob("*.mp3"))) == count and (folders.quarantine / "broken.mp3").is_file()
    return folders


def settings_of(folders: Folders, **more: object) -> Settings:
    return Settings(**{key: folders.folder(key) for key in FOLDER_KEYS}, **more)


def client_of(settings: Settings, base_url: str = "http://127.0.0.1:8765") -> TestClient:
    """The page as a browser on this machine asks for it (its Host names this machine)."""
    return TestClient(make_app(settings), base_url=base_url)


def unsure_id(folders: Folders, outcome: str = "unsure") -> int:
    """The journal id of the (first) file in unsure/ (or with that outcome)."""
    with Journal(folders.state / "journal.sqlite3") as journal:
        return next(record.id for record in journal.placed_records() if record.outcome == outcome)


def csrf_of(page: str) -> str:
    start = page.index('name="csrf" value="') + len('name="csrf" value="')
    return page[start : page.index('"', start)]


@pytest.fixture(scope="module")
def sorted_once(tmp_path_factory: pytest.TempPathFactory) -> Folders:
    """One unsure file, for the tests that change nothing."""
    return unsure_files(tmp_path_factory.mktemp("web") / "music")


@pytest.fixture(scope="module")
def unsure_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    return Snapshot(unsure_files(tmp_path_factory.mktemp("web-changes") / "music").root)


@pytest.fixture
def one_unsure(unsure_snapshot: Snapshot) -> Folders:
    """One unsure file, for a test that changes it (the sort made once, put back for each test)."""
    return Folders(unsure_snapshot.restore())


def test_the_page_lists_an_unsure_file_with_its_top_3_a_button_per_genre_and_the_quarantine(
    sorted_once: Folders,
) -> None:
    number = unsure_id(sorted_once)
    page = client_of(settings_of(sorted_once)).get("/")
    assert page.status_code == 200
    assert "Night Train 0.mp3" in page.text and f'src="/audio/{number}"' in page.text
    (placed,) = sorted_once.unsure.glob("*.mp3")
    for entry in ID3(placed)["TXXX:GENRESORT_TOP3"].text[0].split("; "):  # "Blues 0.412" -> "Blues 41%"
        genre, probability = entry.rsplit(" ", 1)
        assert f"{genre} {float(probability):.0%}" in page.text
    assert 'name="genre" value="Jazz"' in page.text and f'action="/undo/{number}"' in page.text
    reason = json.loads((sorted_once.quarantine / "broken.mp3.reason.json").read_text())["error"]
    assert "broken.mp3" in page.text and html.escape(reason) in page.text


def test_a_file_s_own_page_says_why(sorted_once: Folders) -> None:
    page = client_of(settings_of(sorted_once)).get(f"/file/{unsure_id(sorted_once)}")
    assert page.status_code == 200
    assert page.text.count("<tr><td>") >= 1 and "strongest tags" in page.text  # each window's verdict, the tags
    assert client_of(settings_of(sorted_once)).get("/file/99").status_code == 404


def test_a_page_asked_for_by_another_name_is_refused(sorted_once: Folders) -> None:
    """DNS rebinding: a web page elsewhere whose name resolves to 127.0.0.1 must not read the page (or its token)."""
    assert client_of(settings_of(sorted_once), "http://music.example.com:8765").get("/").status_code == 421
    assert client_of(settings_of(sorted_once), "http://localhost:8765").get("/").status_code == 200


def test_audio_is_served_by_journal_id_and_only_from_the_configured_folders(sorted_once: Folders, tmp_path) -> None:
    client = client_of(settings_of(sorted_once))
    (placed,) = sorted_once.unsure.glob("*.mp3")
    number = unsure_id(sorted_once)
    response = client.get(f"/audio/{number}")
    assert response.status_code == 200 and response.content == placed.read_bytes()
    assert response.headers["content-type"] == "audio/mpeg"
    assert client.get(f"/audio/{number + 1000}").status_code == 404  # no such record
    assert client.get("/audio/..%2F..%2Fetc%2Fpasswd").status_code == 404  # no path is ever taken from a request
    # the same journal, but the folders configured elsewhere: the file is outside them, so it is not served
    elsewhere = Settings(
        **{key: sorted_once.folder(key) for key in ("inbox", "state_dir", "quarantine")},
        library=tmp_path / "library",
        unsure=tmp_path / "unsure",
        not_music=tmp_path / "not-music",
    )
    assert client_of(elsewhere).get(f"/audio/{number}").status_code == 404


def test_a_change_without_the_csrf_token_is_refused(sorted_once: Folders) -> None:
    client = client_of(settings_of(sorted_once))
    number = unsure_id(sorted_once)
    assert client.post(f"/assign/{number}", data={"genre": "Jazz"}).status_code == 403
    assert client.post(f"/undo/{number}", data={"csrf": "guessed"}).status_code == 403
    other_start = csrf_of(client_of(settings_of(sorted_once)).get("/").text)  # a token per start
    assert client.post(f"/undo/{number}", data={"csrf": other_start}).status_code == 403
    assert len(list(sorted_once.unsure.glob("*.mp3"))) == 1


def test_with_a_token_every_request_needs_it(sorted_once: Folders) -> None:
    client = client_of(settings_of(sorted_once, web_token="s3cret-token"))
    audio = f"/audio/{unsure_id(sorted_once)}"
    assert client.get("/").status_code == 401
    assert client.get(audio).status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    assert client.get("/?token=s3cret-token").status_code == 200  # sets the cookie...
    assert client.get(audio).status_code == 200  # ...which the page's links then carry


def test_an_address_other_machines_reach_needs_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="set web_token"):
        Settings(web_listen="0.0.0.0:8765")
    assert Settings(web_listen="0.0.0.0:8765", web_token="s3cret-token").web_listen == "0.0.0.0:8765"
    assert Settings(web_listen="[::1]:9000").web_token is None
    with pytest.raises(ValueError, match="not an address and port"):
        Settings(web_listen="8765")
    monkeypatch.setenv("GENRESORT_WEB_LISTEN", "192.168.1.5:8765")
    with pytest.raises(
        ConfigError, match="web_listen 192.168.1.5:8765 can be reached from other machines: set web_token"
    ):
        load_settings()
    started = subprocess.run([sys.executable, "-m", "genresort.cli", "web"], capture_output=True, text=True, timeout=60)
    assert started.returncode == 2 and "set web_token" in started.stderr


def test_a_port_in_use_is_refused_at_start_in_plain_words(tmp_path: Path) -> None:
    folders = Folders(tmp_path / "music")
    with socket.create_server(("127.0.0.1", 0)) as occupied:
        port = occupied.getsockname()[1]
        for command in (["web"], ["watch"]):  # `genresort web`, and the daemon asked to serve the page
            started = subprocess.run(
                [sys.executable, "-m", "genresort.cli", *command],
                env=folders.env(web_listen=f"127.0.0.1:{port}"),
                capture_output=True,
                text=True,
                timeout=120,
            )
            (refused,) = [json.loads(line) for line in started.stdout.splitlines() if '"web.refused"' in line]
            assert started.returncode == 2 and "Address already in use" in refused["reason"], started.stdout
            assert f"127.0.0.1:{port}" in refused["reason"]


def test_assign_through_the_page_moves_the_file_and_journals_it(one_unsure: Folders) -> None:
    folders = one_unsure
    (unsure,) = folders.unsure.glob("*.mp3")
    client = client_of(settings_of(folders))
    csrf = csrf_of(client.get("/").text)
    number = unsure_id(folders)
    answer = client.post(f"/assign/{number}", data={"csrf": csrf, "genre": "Jazz"}, follow_redirects=False)
    assert answer.status_code == 303
    assigned = folders.library / "Jazz" / unsure.name
    assert assigned.is_file() and not unsure.exists()
    assert ID3(assigned)["TXXX:GENRESORT_DECISION"].text == ["person"]
    with Journal(folders.state / "journal.sqlite3") as journal:
        record = journal.get(number)
        assert (record.step, record.outcome, record.destination) == (Step.DONE, "assigned", assigned)
    assert "assigned to" in client.get(answer.headers["location"]).text
    assert (
        client.post(f"/assign/{number}", data={"csrf": csrf, "genre": "Polka"}).status_code == 400
    )  # not a model genre


def test_a_not_music_file_is_listed_to_decide_and_can_be_assigned(tmp_path: Path) -> None:
    folders = unsure_files(tmp_path / "music", music_threshold=1.0)
    (aside,) = folders.not_music.glob("*.mp3")
    client = client_of(settings_of(folders))
    page = client.get("/").text
    number = unsure_id(folders, "not_music")
    assert f'src="/audio/{number}"' in page and "1 not-music" in page
    answer = client.post(f"/assign/{number}", data={"csrf": csrf_of(page), "genre": "Classical"})
    assert answer.status_code == 200 and "assigned to Classical" in answer.text
    assigned = folders.library / "Classical" / aside.name
    assert assigned.is_file() and not aside.exists()
    assert ID3(assigned)["TXXX:GENRESORT_PREVIOUS_GENRE"].text == ["not-music"]


def test_a_change_goes_ahead_while_a_daemon_holds_the_state_folder(one_unsure: Folders) -> None:
    folders = one_unsure
    client = client_of(settings_of(folders))
    csrf = csrf_of(client.get("/").text)
    daemon = InstanceLock(folders.state)  # what a running daemon holds: moves have a lock of their own
    daemon.acquire()
    try:
        answer = client.post(f"/assign/{unsure_id(folders)}", data={"csrf": csrf, "genre": "Jazz"})
    finally:
        daemon.release()
    assert answer.status_code == 200 and "assigned to Jazz" in answer.text
    assert not list(folders.unsure.glob("*.mp3")) and len(list((folders.library / "Jazz").glob("*.mp3"))) == 1


def test_a_change_while_another_move_runs_too_long_is_refused_with_the_reason(
    one_unsure: Folders, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("genresort.service.moves.MOVES_WAIT_SECONDS", 0.2)  # rather than the 30 s a person gets
    folders = one_unsure
    client = client_of(settings_of(folders))
    csrf = csrf_of(client.get("/").text)
    other_move = MovesLock(folders.state)
    assert other_move.try_acquire()
    try:
        answer = client.post(f"/assign/{unsure_id(folders)}", data={"csrf": csrf, "genre": "Jazz"})
    finally:
        other_move.release()
    assert answer.status_code == 409 and "another undo or assign" in answer.text
    assert len(list(folders.unsure.glob("*.mp3"))) == 1 and not (folders.library / "Jazz").exists()


# --- in a real browser -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_web(folders: Folders, port: int) -> subprocess.Popen:
    """A real `genresort web` on these folders, answering on `port`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "genresort.cli", "web"],
        env=folders.env(web_listen=f"127.0.0.1:{port}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if not answering(port, process.poll):
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"genresort web did not answer: {process.communicate(timeout=10)[0]!r}")
    return process


def answering(port: int, exited: Callable[[], object] = lambda: None, timeout: float = 60.0) -> bool:
    """Whether the page on `port` answers within `timeout` (False at once when `exited` says the server has)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):
                return True
        except OSError:
            time.sleep(0.2)
        if exited() is not None:
            return False
    return False


def post(url: str, **form: str) -> str:
    """A form posted as a browser posts it; the page its redirect leads to."""
    with urllib.request.urlopen(url, data=urllib.parse.urlencode(form).encode()) as answer:
        return html.unescape(answer.read().decode())


def test_the_daemon_serves_the_page_and_sorts_on_while_a_person_assigns_and_undoes(tmp_path: Path) -> None:
    folders = Folders(tmp_path / "music")
    port = free_port()
    env = folders.env(web_listen=f"127.0.0.1:{port}", confidence_threshold=1.0, stability_seconds=0.5)
    daemon = Daemon(folders, env, "serving")
    try:
        daemon.wait_ready()
        assert daemon.logs("web.ready")[0]["url"] == f"http://127.0.0.1:{port}/" and answering(port)
        song = drop(write_mp3(tmp_path / "Night Train.mp3", seconds=6, seed=3), folders.inbox / "Night Train.mp3")
        assert daemon.wait_outcome(song)["event"] == "file.unsure"
        page = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(page) as answer:
            csrf = csrf_of(answer.read().decode())
        number = unsure_id(folders)
        assert "assigned to Jazz" in post(f"{page}/assign/{number}", csrf=csrf, genre="Jazz")  # the page it led to
        assert (folders.library / "Jazz" / song.name).is_file() and not (folders.unsure / song.name).exists()
        # given back into the watched inbox, as it arrived, and sorted again by the daemon
        assert "given back as it arrived into inbox" in post(f"{page}/undo/{number}", csrf=csrf)
        daemon.wait_for(lambda: len(daemon.outcomes(song)) == 2, "the file given back sorted again")
        assert (folders.unsure / song.name).is_file() and not (folders.library / "Jazz" / song.name).exists()
        assert daemon.terminate() == 0
    finally:
        daemon.close()
    assert not answering(port, timeout=1.0)
    with Journal(folders.state / "journal.sqlite3") as journal:
        assert [record.outcome for record in journal.placed_records()] == ["unsure"]
        assert journal.get(number).step is Step.UNDONE


def browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1200,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def test_in_a_real_browser_play_a_file_assign_a_genre_and_undo_it(tmp_path: Path) -> None:
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        unavailable(f"Debian's chromium and chromium-driver are not installed ({CHROMIUM}, {CHROMEDRIVER})")
    pytest.importorskip("selenium")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    folders = unsure_files(tmp_path / "music", count=3)
    arrived = {path.name: path.read_bytes() for path in folders.unsure.glob("*.mp3")}
    with Journal(folders.state / "journal.sqlite3") as journal:
        originals = {record.source.name: record.sha256 for record in journal.placed_records()}
    port = free_port()
    server = start_web(folders, port)
    profile = Path(tempfile.mkdtemp(prefix="genresort-chromium-"))
    driver = browser(profile)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        assert "Night Train 0.mp3" in driver.page_source and "broken.mp3" in driver.page_source

        player = driver.find_element(By.CSS_SELECTOR, "#undecided audio")
        driver.execute_script("arguments[0].play()", player)
        WebDriverWait(driver, 30).until(
            lambda _: driver.execute_script("return !arguments[0].paused && arguments[0].currentTime > 0", player)
        )
        row = player.find_element(By.XPATH, "./ancestor::tr")
        name = row.find_element(By.TAG_NAME, "td").text.splitlines()[0]
        row.find_element(By.CSS_SELECTOR, "button[value='Jazz']").click()
        WebDriverWait(driver, 30).until(lambda _: "assigned to" in driver.page_source)
        assigned = folders.library / "Jazz" / name
        assert assigned.is_file() and not (folders.unsure / name).exists()
        if not SCREENSHOT.exists():  # the README's picture: two to decide, one decided, the quarantine
            SCREENSHOT.parent.mkdir(exist_ok=True)
            driver.save_screenshot(str(SCREENSHOT))

        history = driver.find_elements(By.CSS_SELECTOR, "#history tr")
        (undo_row,) = [row for row in history if name in row.text]
        assert "assigned: Jazz" in undo_row.text
        undo_row.find_element(By.XPATH, ".//button[text()='Undo']").click()
        WebDriverWait(driver, 30).until(lambda _: "given back as it arrived into inbox" in driver.page_source)
    finally:
        driver.quit()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)

    given_back = folders.inbox / name
    assert not assigned.exists() and given_back.is_file()
    assert given_back.read_bytes() != arrived[name]  # as it arrived, not as it was placed
    assert [path.name for path in folders.root.rglob("*.mp3") if path.parent == folders.inbox] == [name]
    with Journal(folders.state / "journal.sqlite3") as journal:
        undone = [record for record in journal.placed_records() if record.source.name == name]
        assert undone == []  # given back: no longer placed
        assert len(journal.placed_records()) == len(originals) - 1
    assert hashlib.sha256(given_back.read_bytes()).hexdigest() == originals[name]
