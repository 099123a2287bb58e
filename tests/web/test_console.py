"""The agent console in a real browser: live transcript, coaching, metrics, summary, auth."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.web.conftest import Call, publish, shot

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


async def test_console_follows_a_call_live(page, relay, bus) -> None:
    call = Call(agent="200")
    token = relay.token("agent", "200")
    await page.goto(f"{relay.http}/#token={token}")
    # The token moves to sessionStorage and out of the address bar.
    await expect(page.locator(".conn")).to_have_attribute("data-state", "live")
    assert "token" not in page.url
    await expect(page.locator(".waiting")).to_be_visible()
    await expect(page.locator(".whoami")).to_have_text("Agente 200")

    await publish(bus, call.started())
    await expect(page.locator(".caller-name")).to_have_text("Lucía Gómez")
    await expect(page.locator(".pill.active")).to_have_text("En curso")
    # The call began 42 s ago: the timer counts from startedAt.
    await expect(page.locator(".call-head .timer")).to_have_text(re.compile(r"^0:4\d$"))

    greeting = "Buenos días, le atiende Carlos de Telcomar. Esta llamada puede ser grabada."
    await publish(bus, call.final("a1", "agent", greeting, 0.5))
    # A partial grows, then its final replaces it in place.
    await publish(bus, call.partial("c1", "customer", "Hola, mire", 5.0))
    bubble = page.locator('.bubble[data-utt="c1"]')
    await expect(bubble).to_have_class(re.compile(r"\bpartial\b"))
    await expect(bubble.locator(".text")).to_have_text("Hola, mire")
    await bubble.evaluate("el => { el.dataset.marker = 'same-node'; }")
    await publish(bus, call.partial("c1", "customer", "Hola, mire, quiero dar de baja", 5.0))
    await expect(bubble.locator(".text")).to_have_text("Hola, mire, quiero dar de baja")
    await expect(bubble).to_have_class(re.compile(r"\bpartial\b"))
    final_text = "Hola, mire, quiero dar de baja mi línea de fibra."
    await publish(bus, call.final("c1", "customer", final_text, 5.0))
    await expect(bubble).to_have_class(re.compile(r"\bfinal\b"))
    await expect(bubble.locator(".text")).to_have_text(final_text)
    await expect(bubble).to_have_attribute("data-marker", "same-node")  # replaced in place
    await expect(page.locator('.bubble[data-utt="c1"]')).to_have_count(1)
    # A stale partial arriving after the final does not undo it: once the page has taken it
    # (the feed's last id is the partial's), the bubble still holds the final.
    stale = await bus.publish(call.partial("c1", "customer", "Hola", 5.0))
    await page.wait_for_function("id => window.coachFeed.lastId === id", arg=stale["id"])
    assert await bubble.get_attribute("class") == "bubble customer final"
    assert await bubble.locator(".text").inner_text() == final_text
    assert await bubble.get_attribute("data-marker") == "same-node"

    threat = "Bueno, no sé, si no me lo arreglan voy a poner una reclamación."
    await publish(
        bus,
        call.final("a2", "agent", "Vaya, siento oír eso. ¿Me puede decir el motivo?", 9.0),
        call.final("c2", "customer", threat, 12.5),
        call.coach(
            "critical",
            "Riesgo de baja y reclamación: ofrezca la retención ahora.",
            ["c1", "c2"],
            kind="alert",
        ),
        call.coach("info", "Confirme el número de cliente antes de ofrecer descuentos.", ["a2"]),
        call.coach("warning", "Ha hablado más que el cliente: pregunte y escuche.", []),
        call.metrics(agent_talk=21.0, customer_talk=9.0),
    )
    await expect(bubble.locator(".text")).to_have_text(final_text)
    # Speaker bubbles: customer on one side, agent on the other.
    await expect(page.locator(".bubble.customer")).to_have_count(2)
    await expect(page.locator(".bubble.agent")).to_have_count(2)
    await expect(page.locator(".bubble.agent .spk").first).to_have_text("Agente")
    await expect(page.locator(".bubble.customer .spk").first).to_have_text("Cliente")

    # The critical alert is pinned above the other cards and names the lines behind it.
    pinned = page.locator(".pinned .card.sev-critical")
    await expect(pinned).to_have_count(1)
    await expect(pinned).to_have_class(re.compile(r"\bpinned-card\b"))
    await expect(pinned).to_have_attribute("role", "alert")
    await expect(pinned.locator(".ref")).to_have_count(2)
    await expect(pinned.locator(".ref").nth(1)).to_contain_text("si no me lo arreglan")
    await expect(page.locator('.bubble[data-utt="c2"]')).to_have_attribute("data-flag", "critical")
    await expect(page.locator(".cards .card")).to_have_count(2)

    # Metrics: the talk-ratio bar follows the metrics event (agent 70 %).
    await expect(page.locator(".metrics .talk")).to_have_attribute("data-share", "0.700")
    await expect(page.locator(".ratio-legend .agent")).to_contain_text("70")
    await expect(page.locator('[data-metric="overtalk"] dd')).to_contain_text("2")
    await expect(page.locator('[data-metric="silence"] dd')).to_have_text(re.compile(r"^\d+:\d\d$"))
    await page.screenshot(path=shot("console-live"))

    # A reference highlights the utterance it cites.
    await pinned.locator(".ref").nth(1).click()
    await expect(page.locator('.bubble[data-utt="c2"]')).to_have_class(re.compile(r"\bflash\b"))

    # A tip can be dismissed; the critical alert cannot, it is acknowledged instead.
    await expect(pinned.locator(".dismiss")).to_have_count(0)
    info_card = page.locator(".cards .card.sev-info")
    await info_card.locator(".dismiss").click()
    await expect(info_card).to_have_count(0)

    await publish(bus, call.ended())
    await expect(page.locator(".pill.ended")).to_contain_text("Finalizada")
    await expect(page.locator(".summary")).to_contain_text("El resumen llegará")
    await publish(bus, call.summary())
    summary = page.locator(".summary")
    await expect(summary).to_contain_text("descuento y se queda")
    # Enums of the contract, shown in the reader's language.
    await expect(summary.locator(".disposition")).to_have_text("Cliente retenido")
    await expect(summary.locator(".disposition")).to_have_attribute("data-value", "retained")
    await expect(summary.locator(".sentiment")).to_have_text("Positivo")
    await expect(summary.locator(".sentiment")).to_have_class(re.compile(r"\bpos\b"))
    await expect(summary.locator(".actions li")).to_have_count(2)
    await page.screenshot(path=shot("console-ended"))

    # After a reload with no call in progress, the last call and its summary are still there.
    await page.reload()
    await expect(page.locator(".summary .disposition")).to_have_text("Cliente retenido")
    await expect(page.locator(".bubble")).to_have_count(4)

    # The next call takes over the console.
    second = Call(agent="200", name="Andrés Ruiz", number="+34622333444")
    await publish(bus, second.started())
    await expect(page.locator(".caller-name")).to_have_text("Andrés Ruiz")
    await expect(page.locator(".bubble")).to_have_count(0)
    await expect(page.locator(".summary")).to_be_hidden()
    await expect(page.locator(".card")).to_have_count(0)


async def test_auto_scroll_pauses_while_scrolled_back(page, relay, bus) -> None:
    call = Call(agent="200")
    await page.goto(f"{relay.http}/#token={relay.token('agent', '200')}")
    await expect(page.locator(".conn")).to_have_attribute("data-state", "live")
    lines = [
        call.final(
            f"u{i}",
            "agent" if i % 2 else "customer",
            f"Frase número {i} de la conversación, con algo de texto para ocupar sitio.",
            i * 3.0,
        )
        for i in range(30)
    ]
    await publish(bus, call.started(), *lines)
    await expect(page.locator(".bubble")).to_have_count(30)
    scroller = page.locator(".scroller")
    at_bottom = "el => el.scrollHeight - el.scrollTop - el.clientHeight < 48"
    assert await scroller.evaluate(at_bottom)
    jump = page.locator(".jump")
    await expect(jump).to_be_hidden()

    # The agent scrolls back: new lines arrive without moving the view.
    await scroller.evaluate("el => { el.scrollTop = 0; }")
    await expect(jump).to_be_visible()
    await publish(
        bus, call.final("late", "customer", "Una frase nueva mientras el agente lee.", 200.0)
    )
    await expect(page.locator('.bubble[data-utt="late"]')).to_have_count(1)
    await expect(jump).to_have_text("Ir al directo (1 nuevas)")
    assert await scroller.evaluate("el => el.scrollTop") == 0

    await jump.click()
    await expect(jump).to_be_hidden()
    assert await scroller.evaluate(at_bottom)


async def test_agent_cannot_see_another_agents_call(page, relay, bus) -> None:
    theirs = Call(agent="201", name="Pedro Secreto")
    await publish(
        bus, theirs.started(), theirs.final("x1", "customer", "Mi contraseña es confidencial.", 1.0)
    )
    token = relay.token("agent", "200")
    await page.goto(f"{relay.http}/#token={token}")
    await expect(page.locator(".conn")).to_have_attribute("data-state", "live")
    await publish(bus, theirs.final("x2", "customer", "Otra frase privada.", 4.0))
    mine = Call(agent="200")
    await publish(bus, mine.started())
    await expect(page.locator(".caller-name")).to_have_text("Lucía Gómez")
    # The other agent's call never reached this console.
    await expect(page.locator("body")).not_to_contain_text("Pedro Secreto")
    await expect(page.locator("body")).not_to_contain_text("privada")
    await expect(page.locator(".bubble")).to_have_count(0)

    # Asking for that call by id is refused by the relay (4403), and the UI says so.
    await page.goto(f"{relay.http}/#call={theirs.id}")
    await expect(page.locator(".refused")).to_have_attribute("data-why", "forbidden")
    await expect(page.locator(".refused")).to_contain_text("otro agente")
    await expect(page.locator(".conn")).to_have_attribute("data-state", "refused")
    await expect(page.locator("body")).not_to_contain_text("confidencial")
    await expect(page.locator("body")).not_to_contain_text("Pedro Secreto")
    await page.screenshot(path=shot("console-refused"))
    # And back to following this agent's own calls.
    await page.get_by_role("link", name="Volver a mis llamadas").click()
    await expect(page.locator(".caller-name")).to_have_text("Lucía Gómez")


async def test_sign_in_form_rejected_token_and_language_switch(page, relay, bus) -> None:
    await page.goto(f"{relay.http}/")
    form = page.locator("form.signin")
    await expect(form).to_be_visible()
    await expect(page.locator("#token")).to_be_focused()
    # Well formed but signed with another secret: the relay closes with 4401.
    forged = relay.token("agent", "200")
    forged = forged[: forged.rindex(".") + 1] + "A" * 43
    await page.locator("#token").fill(forged)
    await page.keyboard.press("Enter")
    await expect(page.locator("#signin-error")).to_contain_text("rechazó el token")
    await expect(form).to_be_visible()
    await page.screenshot(path=shot("console-signin"))

    await page.locator("#token").fill("not-a-token")
    await page.keyboard.press("Enter")
    await expect(page.locator("#signin-error")).to_have_text(
        "Ese token no tiene un formato válido."
    )

    await page.locator("#token").fill(relay.token("agent", "200"))
    await page.keyboard.press("Enter")
    await expect(page.locator(".conn")).to_have_attribute("data-state", "live")
    await expect(page.locator(".waiting .big")).to_have_text("Esperando una llamada…")

    # Switch to English (keyboard only), then back.
    await page.locator("button.lang").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator(".waiting .big")).to_have_text("Waiting for a call…")
    await expect(page.locator(".conn")).to_have_text("Live")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    call = Call(agent="200")
    await publish(bus, call.started(), call.final("u1", "customer", "Hello there.", 0.0))
    await expect(page.locator(".bubble .spk")).to_have_text("Customer")
    await page.locator("button.lang").click()
    await expect(page.locator(".bubble .spk")).to_have_text("Cliente")

    # A reload keeps the session (sessionStorage); signing out forgets it.
    await page.reload()
    await expect(page.locator(".bubble .text")).to_have_text("Hello there.")
    await page.locator("button.signout").click()
    await expect(form).to_be_visible()
    await page.reload()
    await expect(page.locator("form.signin")).to_be_visible()


async def test_reconnect_after_relay_restart_resumes_without_gaps_or_duplicates(
    page, redis_server, bus_config, bus
) -> None:
    from tests.relay.conftest import start_relay

    relay = await start_relay(redis_server.url, bus_config)
    call = Call(agent="200")
    await page.goto(f"{relay.http}/#token={relay.token('agent', '200')}")
    conn = page.locator(".conn")
    await expect(conn).to_have_attribute("data-state", "live")
    await publish(
        bus,
        call.started(),
        call.final("u1", "agent", "Buenos días, ¿en qué puedo ayudarle?", 0.5),
        call.final("u2", "customer", "Tengo un problema con el router.", 3.0),
        call.coach("info", "Pida el número de serie del router.", ["u2"]),
    )
    await expect(page.locator(".bubble")).to_have_count(2)

    await relay.stop()
    await expect(conn).to_have_attribute("data-state", "reconnecting")
    # The call goes on while the relay is away: these reach Redis, not the browser.
    await publish(
        bus,
        call.final("u3", "agent", "¿Ha probado a reiniciarlo?", 6.0),
        call.coach("warning", "Evite soluciones genéricas; pregunte qué ha probado.", ["u3"]),
        call.partial("u4", "customer", "Sí, dos", 9.0),
    )
    relay = await start_relay(redis_server.url, bus_config, port=relay.settings.port)
    try:
        await expect(conn).to_have_attribute("data-state", "live", timeout=15_000)
        await expect(page.locator(".bubble")).to_have_count(4)
        await expect(page.locator('.bubble[data-utt="u4"]')).to_have_class(
            re.compile(r"\bpartial\b")
        )
        await publish(bus, call.final("u4", "customer", "Sí, dos veces, y sigue igual.", 9.0))
        await expect(page.locator('.bubble[data-utt="u4"]')).to_have_class(re.compile(r"\bfinal\b"))
        await expect(page.locator(".bubble")).to_have_count(4)
        await expect(page.locator(".card")).to_have_count(2)
        texts = await page.locator(".bubble .text").all_inner_texts()
        assert texts == [
            "Buenos días, ¿en qué puedo ayudarle?",
            "Tengo un problema con el router.",
            "¿Ha probado a reiniciarlo?",
            "Sí, dos veces, y sigue igual.",
        ]
        feed = await page.evaluate(
            "({connects: coachFeed.connects, duplicates: coachFeed.duplicates})"
        )
        # It did reconnect, and resumed from its last id: the relay sent nothing twice.
        assert feed["connects"] >= 2
        assert feed["duplicates"] == 0
    finally:
        await relay.stop()


async def test_a_resume_past_trimmed_history_says_so(page, redis_server, bus_config) -> None:
    from dataclasses import replace

    from coach.bus import Bus
    from tests.relay.conftest import start_relay

    # Tiny streams: Redis trims them (approximately, by whole nodes of 100 entries).
    config = replace(bus_config, global_maxlen=10, call_maxlen=10)
    bus = Bus.connect(redis_server.url, config)
    relay = await start_relay(redis_server.url, config)
    try:
        call = Call(agent="200")
        await page.goto(f"{relay.http}/#token={relay.token('agent', '200')}")
        conn = page.locator(".conn")
        await expect(conn).to_have_attribute("data-state", "live")
        await publish(bus, call.started(), call.final("u0", "agent", "Hola.", 0.0))
        await expect(page.locator(".bubble")).to_have_count(1)
        await relay.stop()
        await expect(conn).to_have_attribute("data-state", "reconnecting")
        await bus.publish_many(
            [call.final(f"u{i}", "customer", f"Frase {i}.", float(i)) for i in range(1, 301)]
        )
        relay = await start_relay(redis_server.url, config, port=relay.settings.port)
        await expect(conn).to_have_attribute("data-state", "live", timeout=15_000)
        await expect(page.locator("#notice")).to_be_visible()
        await expect(page.locator("#notice")).to_contain_text("puede faltar")
        # What is still stored arrived, newest last, each line once.
        await expect(page.locator(".bubble").last).to_have_text(re.compile("Frase 300"))
        utts = await page.locator(".bubble").evaluate_all("els => els.map(e => e.dataset.utt)")
        assert len(utts) == len(set(utts))
    finally:
        await relay.stop()
        await bus.close()
