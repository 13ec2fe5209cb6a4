"""A stand-in for an LLM API: answers chat completions with the token counts of real requests.

Each request gets the next row of a real trace, in file order, wrapping around:
`ContextTokens` is the prompt's token count and `GeneratedTokens` the completion's
(azure-llm-trace-2023-conv.csv, one hour of a production conversational LLM service, from the
Azure Public Dataset, CC-BY 4.0). The model `fail-upstream` answers 502, to exercise a
gateway's failure path. `GET /stats` says how many completions it served and their token
counts, for a test to compare with what a gateway charged.

    TRACE_CSV=../../../shared/data/azure-llm-trace-2023-conv.csv \\
        uvicorn upstream:app --host 127.0.0.1 --port 9001
"""

from __future__ import annotations

import csv
import itertools
import os
import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DEFAULT_TRACE = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "azure-llm-trace-2023-conv.csv"
)


def load_trace(path: Path) -> list[tuple[int, int]]:
    """(prompt tokens, completion tokens) of every row of the trace."""
    with path.open(newline="") as f:
        rows = [(int(r["ContextTokens"]), int(r["GeneratedTokens"])) for r in csv.DictReader(f)]
    if not rows:
        raise SystemExit(f"{path}: no rows")
    return rows


TRACE = load_trace(Path(os.environ.get("TRACE_CSV", DEFAULT_TRACE)))
_next_row = itertools.cycle(range(len(TRACE)))
_lock = threading.Lock()
_served = {"completions": 0, "prompt_tokens": 0, "completion_tokens": 0}


async def completions(request: Request) -> JSONResponse:
    body = await request.json()
    model = body.get("model", "")
    if model == "fail-upstream":
        return JSONResponse({"error": "the model is overloaded"}, status_code=502)
    with _lock:
        row = next(_next_row)
        prompt_tokens, completion_tokens = TRACE[row]
        _served["completions"] += 1
        _served["prompt_tokens"] += prompt_tokens
        _served["completion_tokens"] += completion_tokens
    return JSONResponse(
        {
            "id": f"cmpl-{row}",
            "object": "chat.completion",
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "…"},
                 "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "trace_row": row,
        }
    )


async def stats(request: Request) -> JSONResponse:
    with _lock:
        return JSONResponse(dict(_served))


app = Starlette(
    routes=[
        Route("/v1/chat/completions", completions, methods=["POST"]),
        Route("/stats", stats, methods=["GET"]),
    ]
)
