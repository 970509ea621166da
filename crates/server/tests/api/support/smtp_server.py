"""A real SMTP server for phonegate's e-mail tests (aiosmtpd; scripts/test.sh installs it).

Listens on 127.0.0.1 (a free port), says `{"port": N}` on stdout once it accepts connections,
and writes every message it takes to OUT/<n>.json: the envelope, the raw message, whether the
session was encrypted (and by STARTTLS), the TLS version and who authenticated by which
mechanism. It stops when its standard input closes (the test that started it ended).

Recipients whose local part is `nobody` are refused for good (550), `busy` for now (451).
"""
import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl
import sys
import threading

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Recorder:
    def __init__(self, out):
        self.out = out
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if local == "nobody":
            return "550 5.1.1 No such user here"
        if local == "busy":
            return "451 4.2.1 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        tls = server.transport.get_extra_info("ssl_object")
        self.count += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "data": envelope.original_content.decode("utf-8", "replace"),
            "tls": tls is not None,
            "tls_version": tls.version() if tls is not None else None,
            "starttls": server._original_transport is not None,
            "auth_mechanism": getattr(session, "mechanism", None),
            "auth_login": getattr(session, "login", None) if session.authenticated else None,
        }
        # The message as a mail reader sees it: decoded headers and the MIME parts' text.
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        record["headers"] = {name: str(value) for name, value in message.items()}
        record["content_type"] = message.get_content_type()
        record["parts"] = [
            {"content_type": part.get_content_type(), "charset": part.get_content_charset(), "content": part.get_content()}
            for part in (message.iter_parts() if message.is_multipart() else [message])
        ]
        path = os.path.join(self.out, f"{self.count:04}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(path + ".tmp", path)
        return "250 2.0.0 Message accepted"


def authenticator(username, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == username and auth_data.password.decode() == password
        if ok:
            session.mechanism = mechanism
            session.login = auth_data.login.decode()
        # handled=False: aiosmtpd answers a failure (535) itself.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    return check


async def main(args):
    context = None
    if args.tls != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    recorder = Recorder(args.out)
    auth = authenticator(args.user, args.password) if args.user else None

    def factory():
        return SMTP(
            recorder,
            hostname="mail.test",
            enable_SMTPUTF8=True,
            tls_context=context if args.tls == "starttls" else None,
            require_starttls=args.tls == "starttls",
            authenticator=auth,
            auth_required=auth is not None,
            # With implicit TLS the whole session is encrypted; aiosmtpd only knows STARTTLS's.
            auth_require_tls=args.tls == "starttls",
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=context if args.tls == "implicit" else None)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    stop = loop.create_future()
    threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set_result, None)), daemon=True).start()
    await stop
    server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tls", choices=["starttls", "implicit", "none"], default="starttls")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--out", required=True)
    asyncio.run(main(parser.parse_args()))
