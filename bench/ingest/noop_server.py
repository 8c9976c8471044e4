"""The reference: an aiohttp handler that reads the body and answers 200 with a small JSON body,
on uvloop like the hub. The ratio hub/no-op shows what the hub's own work costs on this machine."""

from __future__ import annotations

import argparse

import uvloop
from aiohttp import web

RESPONSE = b'{"messages":[{"id":"01J0000000000000000000000","duplicate":false}]}'


async def handle(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=RESPONSE, content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/webhooks/{channel}/{inbox_id}", handle)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
