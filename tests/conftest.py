import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


# --- opt-in: a digest of every response, to prove a refactor changed no behaviour ---------
#
#   pytest tests/test_rolling_replay.py --record-responses=before.txt
#   (refactor)
#   pytest tests/test_rolling_replay.py --record-responses=after.txt && cmp before.txt after.txt
#
# Each line is a test id and the SHA-256 of every response it received, in order,
# serialised deterministically: equal files mean byte-identical responses.


def pytest_addoption(parser):
    parser.addoption("--record-responses", default=None,
                     help="write a digest of every RunFunction response per test to this file")


def pytest_configure(config):
    path = config.getoption("--record-responses")
    if path:
        config.pluginmanager.register(_ResponseRecorder(Path(path)), "response-recorder")


class _ResponseRecorder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def pytest_runtest_call(self, item):
        import hashlib

        from function.fn import FunctionRunner

        digest = hashlib.sha256()
        original = FunctionRunner.run

        def run(runner, req):
            rsp = original(runner, req)
            digest.update(rsp.SerializeToString(deterministic=True))
            return rsp

        FunctionRunner.run = run
        self._current = (item.nodeid, digest, original)

    def pytest_runtest_teardown(self, item):
        current = getattr(self, "_current", None)
        if current is None:
            return
        nodeid, digest, original = current
        from function.fn import FunctionRunner

        FunctionRunner.run = original
        self.lines.append(f"{nodeid} {digest.hexdigest()}")
        self._current = None

    def pytest_sessionfinish(self):
        self.path.write_text("\n".join(sorted(self.lines)) + "\n")
