"""The setup smoke check and the crash report: a broken llama.cpp engine gets a clear error
that names the cause and the fix, never a hang or a bare 'connection refused'."""
from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from toolalpaca_utils.llm import ChatClient, LLMServerCrashed, embedded_server
from toolalpaca_utils.llm.smoke import EngineSmokeError, main, run_smoke
from toolalpaca_utils.procs import describe_exit

SEGV_CHILD = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]


def test_describe_exit_names_the_signal():
    assert describe_exit(-signal.SIGSEGV) == "killed by signal SIGSEGV"
    assert describe_exit(3) == "exit code 3"


def test_a_child_killed_by_sigsegv_is_a_clear_error():
    start = time.monotonic()
    with pytest.raises(EngineSmokeError) as err:
        run_smoke(SEGV_CHILD, timeout=30)
    msg = str(err.value)
    assert "crashed" in msg and "SIGSEGV" in msg and "make rebuild-engine" in msg
    assert time.monotonic() - start < 30


def test_a_hanging_child_is_a_clear_error_not_a_hang():
    start = time.monotonic()
    with pytest.raises(EngineSmokeError, match=r"(?s)did not generate within 2s \(hung\).*make rebuild-engine"):
        run_smoke([sys.executable, "-c", "import time; time.sleep(60)"], timeout=2)
    assert time.monotonic() - start < 20


def test_a_child_that_fails_with_an_error_exit_names_it():
    with pytest.raises(EngineSmokeError, match="exit code 7"):
        run_smoke([sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(7)"], timeout=30)


@pytest.mark.slow
def test_smoke_check_passes_with_this_build(capsys):
    """The real check on this machine's engine build: the embedded model generates."""
    assert main([]) == 0
    assert "engine smoke check passed" in capsys.readouterr().out


@pytest.mark.slow
def test_a_server_that_crashes_is_reported_as_a_crash(tmp_path):
    """The server process dies by SIGSEGV (as a native build does mid-generation): the client's
    error says the server crashed, with the signal and the fix."""
    with embedded_server(log_dir=tmp_path) as srv:
        client = ChatClient(srv.base_url, srv.model, max_retries=0)
        assert client.chat([{"role": "user", "content": "Hi"}], max_tokens=2).text is not None
        os.kill(srv.pid, signal.SIGSEGV)
        time.sleep(0.5)
        with pytest.raises(LLMServerCrashed) as err:
            client.chat([{"role": "user", "content": "Hi again"}], max_tokens=2)
    msg = str(err.value)
    assert "crashed" in msg and "SIGSEGV" in msg and "make rebuild-engine" in msg
