"""A real SMTP server (aiosmtpd) for the email notifier's tests: it keeps every message it accepts.

    python smtp_sink.py --dir OUT [--port 0] [--mode plain|starttls|tls --cert C --key K]
                        [--user U --password P]

--mode starttls  offers STARTTLS and refuses anything else before it (require_starttls)
--mode tls       implicit TLS from the first byte (SMTPS)
--mode plain     no TLS
--user/--password  offer AUTH PLAIN and LOGIN and accept only this pair; without them, no AUTH

Each accepted message is written to OUT/NNNN.eml (the raw bytes received) and OUT/NNNN.json
({"mail_from", "rcpt_tos", "tls", "authenticated"}). Recipients whose local part is "tempfail"
get a 451 (transient) and "reject" a 550 (permanent), so tests can check how both are handled.
--verbose logs aiosmtpd's session errors to stderr. Prints "ready PORT" on stdout once listening, then serves until killed.
"""

import argparse
import asyncio
import json
import logging
import os
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local == "tempfail":
            return "451 4.3.0 try again later"
        if local == "reject":
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.out_dir, f"{self.count:04d}")
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            # Set after STARTTLS and with implicit TLS alike.
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": bool(session.authenticated),
        }
        # Write the metadata first and the message last, each atomically: a test that sees
        # NNNN.eml finds NNNN.json complete.
        for suffix, data in ((".json", json.dumps(meta).encode()), (".eml", envelope.original_content)):
            with open(base + suffix + ".tmp", "wb") as f:
                f.write(data)
            os.replace(base + suffix + ".tmp", base + suffix)
        return "250 OK"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--mode", choices=["plain", "starttls", "tls"], default="plain")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--verbose", action="store_true", help="log aiosmtpd's session errors")
    args = p.parse_args()
    if not args.verbose:
        # The tests provoke failed handshakes and logins on purpose.
        logging.getLogger("mail.log").setLevel(logging.CRITICAL)
        warnings.simplefilter("ignore", DeprecationWarning)

    context = None
    if args.mode != "plain":
        if not (args.cert and args.key):
            p.error("--mode starttls and tls need --cert and --key")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == args.user.encode()
            and auth_data.password == args.password.encode()
        )
        # handled=False: aiosmtpd answers 535 itself on failure.
        return AuthResult(success=ok, handled=False)

    handler = Sink(args.dir)

    def factory():
        kwargs = {"hostname": "tracebudget-sink"}
        if args.user is not None:
            kwargs["authenticator"] = authenticator
            # aiosmtpd only recognises TLS it negotiated itself (STARTTLS): implicit TLS and
            # plain mode must allow AUTH without it.
            kwargs["auth_require_tls"] = args.mode == "starttls"
        if args.mode == "starttls":
            kwargs["tls_context"] = context
            kwargs["require_starttls"] = True
        return SMTP(handler, **kwargs)

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            factory, "127.0.0.1", args.port, ssl=context if args.mode == "tls" else None
        )
        port = server.sockets[0].getsockname()[1]
        print(f"ready {port}", flush=True)
        await server.serve_forever()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
