import io

from rich.console import Console

from release.progress import TransferProgress
from tests.release.fakes import FakeClock


def render(delay: float, pause: float) -> str:
    out = io.StringIO()
    clock = FakeClock()
    console = Console(file=out, force_terminal=True)
    progress = TransferProgress(delay=delay, console=console, clock=clock)
    progress.start("uploading helionyx.whl", 1000)
    progress.advance(100)
    clock.sleep(pause)  # the transfer's own duration is what is under test
    progress.advance(400)
    progress.finish()
    return out.getvalue()


def test_a_transfer_longer_than_the_delay_shows_a_progress_bar() -> None:
    assert "uploading helionyx.whl" in render(delay=0.05, pause=0.1)


def test_a_quick_transfer_draws_nothing() -> None:
    assert render(delay=5.0, pause=0.0) == ""
