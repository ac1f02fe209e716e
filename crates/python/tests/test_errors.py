"""The refusal classes: one per code of the node's own table, each raised for its
code by the client (against a local JSON-RPC endpoint that answers with it)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Iterator, Tuple

import pytest

import the_block as tb
from the_block import errors


def test_the_table_is_the_nodes() -> None:
    native = tb.rejection_reasons()
    assert [(c, cls.refusal_reason) for c, cls in sorted(errors.REFUSALS.items())] == native
    for code, reason in native:
        cls = errors.REFUSALS[code]
        assert cls.__name__ == "Err" + "".join(p.capitalize() for p in reason.split("_"))
        assert getattr(errors, "ERR_" + reason.upper()) == code
        assert issubclass(cls, tb.TxRejected) and issubclass(cls, tb.TheBlockError)
    assert errors.ErrNonceGap.refusal_code == tb.ERR_NONCE_GAP == 8


class _Answer:
    error: Any = None


def _server(answer: _Answer) -> Tuple[HTTPServer, str]:
    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            n = int(self.headers["Content-Length"])
            req = json.loads(self.rfile.read(n))
            body = json.dumps({"jsonrpc": "2.0", "id": req["id"], "error": answer.error})
            out = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a: Any) -> None:
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Tuple[_Answer, tb.Client]]:
    a = _Answer()
    srv, url = _server(a)
    yield a, tb.Client(url, timeout=5)
    srv.shutdown()


def test_every_refusal_raises_its_class(endpoint: Tuple[_Answer, tb.Client]) -> None:
    answer, client = endpoint
    stx = tb.sign_tx(tb.SecretKey.dev("x"), tb.RawTxPayload(from_=tb.SecretKey.dev("x").address, to=tb.SecretKey.dev("y").address))
    for code, reason in tb.rejection_reasons():
        answer.error = {"code": -32010, "message": f"refused [{reason}]", "data": {"code": code, "reason": reason}}
        with pytest.raises(errors.REFUSALS[code]) as e:
            client.submit_tx(stx)
        assert e.value.code == code and e.value.reason == reason
        assert e.value.rpc_code == -32010


@pytest.mark.parametrize(
    "code,cls",
    [(-32011, tb.errors.NotFound), (-32012, tb.errors.Unavailable), (-32013, tb.errors.Unauthorized), (-32602, tb.errors.InvalidParams), (-32000, tb.RpcError)],
)
def test_rpc_errors_by_code(endpoint: Tuple[_Answer, tb.Client], code: int, cls: type) -> None:
    answer, client = endpoint
    answer.error = {"code": code, "message": "no"}
    with pytest.raises(cls):
        client.chain_info()


def test_an_unreachable_node_is_a_transport_error() -> None:
    c = tb.Client("http://127.0.0.1:1", timeout=2)
    with pytest.raises(tb.errors.RpcTransportError, match="cannot reach"):
        c.head()


def test_a_rust_panic_is_raised_not_an_abort() -> None:
    from the_block import _native

    with pytest.raises(BaseException) as e:
        _native._panic_for_tests()  # type: ignore[attr-defined]
    assert type(e.value).__name__ == "PanicException"
    assert "on purpose" in str(e.value)
    # The interpreter and the extension go on working.
    assert tb.Address(str(tb.SecretKey.dev("after").address)) == tb.SecretKey.dev("after").address
