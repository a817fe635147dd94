"""One pass of the mail worker at a time, against real Redis, PostgreSQL and SMTP."""

import time

from gobarber.extensions import db
from gobarber.models import MailDelivery


def pending(redis_conn, keys, priority="default"):
    return redis_conn.xpending(keys.stream(priority), keys.group)["pending"]


def test_sends_the_cancellation_mail_then_acknowledges(shop, worker, smtp_server, redis_conn,
                                                       keys):
    canceled = shop.cancellation()
    assert canceled["cancellation_mail"]["status"] == "queued"

    worker.loop()

    [message] = smtp_server.messages
    delivery = shop.delivery(canceled["id"])
    assert message["To"] == f"Barbeiro Zé <{shop.provider.email}>"
    assert message["From"] == "Equipe GoBarber <noreply@gobarber.com>"
    assert message["Subject"] == "Agendamento cancelado"
    assert message["Message-ID"] == f"<{delivery.event_id}@gobarber.com>"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for part in (text, html):
        assert "Olá, " in part and "Barbeiro Zé" in part
        assert "Houve um cancelamento de horário, confira os detalhes abaixo:" in part
        assert "Cliente Ana" in part
        assert "O horário está novamente disponível para novos agendamentos." in part
        assert "Equipe GoBarber" in part
    assert delivery.status == "sent" and delivery.attempts == 1
    assert shop.mail_status(canceled["id"])["status"] == "sent"
    assert pending(redis_conn, keys) == 0
    assert redis_conn.xlen(keys.stream("default")) == 0  # acknowledged entries do not pile up
