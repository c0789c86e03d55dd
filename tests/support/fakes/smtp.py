"""A real SMTP server (aiosmtpd) on 127.0.0.1 that records messages and can refuse them.

fail_next("451 4.3.0 Try again later") answers the next RCPT TO with that reply; any code works,
so 4xx (deferral) and 5xx (rejection) paths are both real SMTP conversations. fail_next(delay=s)
answers late (past the client's timeout, a timeout), fail_next(drop=True) hangs up mid-conversation.
"""

import asyncio
import email
import email.policy
import threading

from aiosmtpd.controller import Controller

from tests.support import free_port


class FakeSMTP:
    def __init__(self):
        self.messages = []
        self.replies = []
        self.sessions = []  # the transport of every connection that said EHLO, in order
        self.lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    @property
    def host(self):
        return self.controller.hostname

    @property
    def port(self):
        return self.controller.port

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    def reset(self):
        with self.lock:
            self.messages.clear()
            self.replies.clear()
            self.sessions.clear()

    def fail_next(self, reply=None, count=1, delay=0.0, drop=False):
        with self.lock:
            self.replies.extend([(reply, delay, drop)] * count)

    def drop_connections(self):
        """Hang up on every client connection, as a server restarting or timing idle ones out does."""
        with self.lock:
            transports = list(self.sessions)
        for transport in transports:
            self.controller.loop.call_soon_threadsafe(transport.close)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        with self.lock:
            self.sessions.append(server.transport)
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            reply, delay, drop = self.replies.pop(0) if self.replies else (None, 0.0, False)
        if delay:
            await asyncio.sleep(delay)
        if drop:
            server.transport.close()
            return "421 closing"
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"
