"""An SMTP server for vix's tests: aiosmtpd on loopback, STARTTLS required when a certificate
is given, each accepted message written whole to OUT/<n>.eml (with OUT/<n>.rcpt holding the
envelope recipients), renamed into place so a reader never sees half a file. Prints
"listening <port>" once it accepts connections; runs until killed.

    python3 sink.py --out DIR [--port N] [--cert PEM --key PEM] [--delay-ms MS]

--delay-ms makes the server a slow relay: it waits that long before it takes each message.
"""

import argparse
import asyncio
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP


class Store:
    def __init__(self, out, delay):
        self.out = out
        self.delay = delay
        self.count = len([n for n in os.listdir(out) if n.endswith(".eml")])

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        self.count += 1
        base = os.path.join(self.out, f"{os.getpid()}-{self.count:06d}")
        with open(base + ".rcpt.tmp", "w") as f:
            f.write("\n".join(envelope.rcpt_tos))
        os.rename(base + ".rcpt.tmp", base + ".rcpt")
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 Message accepted for delivery"


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--delay-ms", type=int, default=0)
    args = parser.parse_args()
    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    handler = Store(args.out, args.delay_ms / 1000)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="localhost",
            tls_context=context,
            require_starttls=context is not None,
        ),
        host="127.0.0.1",
        port=args.port,
        reuse_address=True,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"listening {port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
