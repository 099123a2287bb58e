"""Playbook rules on realistic Spanish and English transcripts, negatives included."""

from __future__ import annotations

from pathlib import Path

import pytest

from coach.redact import RedactionSession
from orchestrator.callstate import CallState
from orchestrator.playbook import PlaybookError
from orchestrator.playbook_schema import parse_playbook
from orchestrator.playbook_store import PlaybookStore
from orchestrator.settings import PLAYBOOK_DIR

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def store() -> PlaybookStore:
    s = PlaybookStore(PLAYBOOK_DIR)
    s.load()
    return s


def fired(store: PlaybookStore, lang: str, speaker: str, text: str) -> list[str]:
    return [r.id for r in store.get(lang).match(speaker, text)]


@pytest.mark.parametrize(
    "speaker,text,rule",
    [
        ("customer", "Mire, quiero darme de baja, ya no me interesa el servicio.", "churn.cancel"),
        ("customer", "Llamo para cancelar el contrato de la fibra.", "churn.cancel"),
        ("customer", "Si no me lo arreglan me paso a la competencia.", "churn.cancel"),
        ("customer", "No, no. Quiero cancelar, lo tengo decidido.", "churn.cancel"),
        ("customer", "No tengo internet desde el lunes y quiero darme de baja.", "churn.cancel"),
        ("customer", "Quiero hablar con un supervisor ahora mismo.", "escalation.supervisor"),
        ("customer", "Páseme con su jefe, por favor.", "escalation.supervisor"),
        ("customer", "Esto lo va a ver mi abogado.", "escalation.legal"),
        ("customer", "Voy a poner una reclamación en Consumo.", "escalation.regulator"),
        ("customer", "Pienso ir al Banco de España con esto.", "escalation.regulator"),
        ("customer", "¡Es una vergüenza! Es la tercera vez que llamo.", "sentiment.anger"),
        ("customer", "Joder, qué servicio más malo.", "sentiment.profanity"),
        ("agent", "Dígame el número de su tarjeta, por favor.", "compliance.card_request"),
        ("agent", "¿Me puede leer los dieciséis dígitos de la tarjeta?", "compliance.card_request"),
        ("agent", "Para verificar, ¿cuál es su contraseña?", "compliance.card_request"),
    ],
)
def test_spanish_positives(store, speaker, text, rule):
    assert rule in fired(store, "es", speaker, text)


@pytest.mark.parametrize(
    "speaker,text",
    [
        ("customer", "No quiero cancelar nada, gracias."),
        ("customer", "No, no quiero darme de baja, solo era una consulta."),
        ("customer", "Nunca he querido cancelar el contrato."),
        ("customer", "Quería cancelar la cita del técnico del martes."),
        ("customer", "Buenos días, llamo por una duda con mi factura de este mes."),
        ("customer", "Muchas gracias, ha sido muy amable."),
        ("agent", "Quiero cancelar el cargo duplicado que le hicimos."),  # agent, not customer
        ("agent", "Por seguridad, no me diga su contraseña; le envío un enlace."),
        ("agent", "Nunca le pediremos el número de tarjeta por teléfono."),
        ("agent", "Le confirmo la tarjeta que termina en cuatro dos."),
    ],
)
def test_spanish_negatives(store, speaker, text):
    assert fired(store, "es", speaker, text) == []


@pytest.mark.parametrize(
    "speaker,text,rule",
    [
        ("customer", "I want to cancel my account today.", "churn.cancel"),
        ("customer", "I'd like to cancel, I'm switching to another provider.", "churn.cancel"),
        ("customer", "Let me speak to a manager.", "escalation.supervisor"),
        ("customer", "My lawyer will hear about this.", "escalation.legal"),
        ("customer", "I'm going to file a complaint with the regulator.", "escalation.regulator"),
        ("customer", "This is ridiculous, I'm fed up.", "sentiment.anger"),
        ("customer", "This is bullshit.", "sentiment.profanity"),
        ("agent", "Could you read me your card number, please?", "compliance.card_request"),
        ("agent", "And what's your password for the account?", "compliance.card_request"),
    ],
)
def test_english_positives(store, speaker, text, rule):
    assert rule in fired(store, "en", speaker, text)


@pytest.mark.parametrize(
    "speaker,text",
    [
        ("customer", "I don't want to cancel anything, thanks."),
        ("customer", "I never said I want to cancel my account."),
        ("customer", "I need to cancel my appointment on Tuesday."),
        ("customer", "Thanks, that's really helpful."),
        ("agent", "We will never ask for your password over the phone."),
        ("agent", "I can see the card ending in four two on your account."),
    ],
)
def test_english_negatives(store, speaker, text):
    assert fired(store, "en", speaker, text) == []


def test_language_fallback(store):
    assert store.get("es-MX").lang == "es"
    assert store.get("fr").lang == "es"  # the default
    assert store.get("en").lang == "en"


# -- timing rules, PII and cooldowns through CallState --------------------------------------

T0 = 1_700_000_000_000


class Call:
    """Feeds a call's events into a CallState like the bus would (ts = start + media time)."""

    def __init__(self, store: PlaybookStore, lang: str = "es") -> None:
        self.state = CallState("c1", store)
        self.n = 0
        self.state.apply(
            {
                "type": "call.started",
                "callId": "c1",
                "ts": T0,
                "lang": lang,
                "agent": "200",
                "caller": {},
                "startedAt": T0,
            }
        )

    def say(self, speaker: str, start: float, end: float, text: str, **extra) -> list[str]:
        self.n += 1
        ev = {
            "type": "final",
            "callId": "c1",
            "speaker": speaker,
            "utteranceId": f"u{self.n}",
            "text": text,
            "start": start,
            "end": end,
            "confidence": 0.9,
            "lang": "es",
            "ts": T0 + int(end * 1000) + 500,
            "id": f"{T0 + self.n}-0",
            **extra,
        }
        return [h.rule.id for h in self.state.apply(ev)]


def test_disclosure_said_in_time_no_alert(store):
    call = Call(store)
    assert (
        call.say("agent", 1, 6, "Buenos días, le informo de que esta llamada puede ser grabada.")
        == []
    )
    assert call.say("customer", 7, 40, "Vale, mire, tengo un problema con la factura.") == []
    assert call.state.tick(T0 + 45_000) == []


def test_disclosure_missing_in_first_30_seconds(store):
    call = Call(store)
    assert call.say("agent", 1, 4, "Buenos días, le atiende Laura, ¿en qué puedo ayudarle?") == []
    assert call.say("customer", 5, 20, "Hola, llamo por la factura.") == []
    hits = call.say("customer", 28, 33, "Me han cobrado dos veces.")
    assert hits == ["compliance.recording_disclosure"]
    # Once per call, even if it is said late.
    assert call.say("agent", 34, 38, "Perdone, esta llamada puede ser grabada.") == []
    assert call.say("customer", 40, 45, "Vale.") == []


def test_disclosure_deadline_fires_on_the_timer_when_nobody_talks(store):
    call = Call(store)
    assert call.state.tick(T0 + 20_000) == []
    hits = call.state.tick(T0 + 34_000)
    assert [h.rule.id for h in hits] == ["compliance.recording_disclosure"]
    assert call.state.tick(T0 + 40_000) == []


def test_long_silence_between_utterances_and_live(store):
    call = Call(store)
    call.say("agent", 0.5, 4, "Esta llamada puede ser grabada. ¿En qué le ayudo?")
    assert call.say("customer", 5, 8, "Quería revisar mi tarifa.") == []
    hits = call.say("agent", 21, 24, "Perdone la espera, ya lo tengo.")
    assert hits == ["conversation.silence"]
    # Live: nobody has said anything for 12 s after the last final.
    last_ts = call.state.last_activity_ms or 0
    live = call.state.tick(last_ts + 40_000)
    assert [h.rule.id for h in live] == ["conversation.silence"]
    assert "40 s" in live[0].text
    assert call.state.tick(last_ts + 41_000) == []  # one alert per silence


def test_overtalk(store):
    call = Call(store)
    call.say("agent", 0.5, 4, "Esta llamada puede ser grabada.")
    call.say("customer", 5, 12, "Es que ya les dije que el router no funciona desde el lunes")
    hits = call.say("agent", 8, 11, "Sí, sí, pero déjeme que le explique el procedimiento")
    assert "conversation.overtalk" in hits
    m = call.state.metrics(T0 + 13_000)
    assert m["overtalk"]["count"] == 1 and m["overtalk"]["seconds"] == pytest.approx(3.0)


def test_short_backchannel_is_not_overtalk(store):
    call = Call(store)
    call.say("customer", 5, 12, "Es que ya les dije que el router no funciona desde el lunes")
    assert "conversation.overtalk" not in call.say("agent", 9, 9.6, "Ajá.")


def stt_final(text: str) -> dict:
    """What STT publishes for `text`: masked, with its `redactions`."""
    return RedactionSession().final({"type": "final", "text": text, "start": 3.0, "end": 9.0})


def test_pii_rule_reads_the_events_redactions(store):
    call = Call(store)
    masked = stt_final("Sí, es el 4111 1111 1111 1111, caduca en el 26.")
    hits = call.say("customer", 3, 9, masked["text"], redactions=masked["redactions"])
    assert "compliance.pii_spoken" in hits
    assert call.state.transcript[-1].text == "Sí, es el [card], caduca en el [expiry]."
    assert {"card", "expiry"} <= call.state.pii_kinds
    # The rule does not re-detect in the text: masked text without `redactions` fires nothing.
    assert "compliance.pii_spoken" not in Call(store).say("customer", 3, 9, masked["text"])


def test_raw_text_from_outside_the_stack_is_masked_again_before_any_prompt(store):
    call = Call(store)
    call.say(
        "customer", 3, 9, "cuatro uno uno uno, uno uno uno uno, uno uno uno uno, uno uno uno uno"
    )
    assert call.state.transcript[-1].text == "[card]"
    call.say("customer", 10, 12, "Mi clave es gato99.")
    assert "gato99" not in call.state.transcript[-1].text
    assert "secret" in call.state.pii_kinds


def test_cooldown_and_replay_restore_fired_rules(store):
    call = Call(store)
    assert "churn.cancel" in call.say("customer", 1, 3, "Quiero darme de baja.")
    assert "churn.cancel" not in call.say("customer", 4, 6, "Que quiero darme de baja, le digo.")
    # A new owner rebuilding the call from the stream sees our coach event: no repeat.
    other = CallState("c1", store)
    other.apply(
        {
            "type": "coach",
            "callId": "c1",
            "source": "rules",
            "ruleId": "churn.cancel",
            "ts": T0 + 5000,
        },
        live=False,
    )
    ev = {
        "type": "final",
        "callId": "c1",
        "speaker": "customer",
        "utteranceId": "x",
        "text": "Quiero darme de baja.",
        "start": 7,
        "end": 8,
        "ts": T0 + 8000,
    }
    assert [h.rule.id for h in other.apply(ev)] == []


def test_english_call(store):
    call = Call(store, lang="en")
    call.say("agent", 0.5, 3, "Hi, this call may be recorded for quality purposes.")
    assert call.say("customer", 4, 8, "I want to cancel my subscription.") == ["churn.cancel"]
    assert call.say("customer", 9, 12, "I don't want to cancel, actually. Just a question.") == []


def test_metrics(store):
    call = Call(store)
    call.say("agent", 0, 4, "Esta llamada puede ser grabada, ¿en qué le puedo ayudar hoy?")
    call.say("customer", 6, 12, "Tengo un problema con la factura de este mes, me cobraron de más")
    m = call.state.metrics(T0 + 13_000)
    assert set(m["talkRatio"]) == {"agent", "customer"}
    assert m["talkRatio"]["customer"] == pytest.approx(0.6)
    assert m["longestSilence"] == pytest.approx(2.0)
    assert m["speakers"]["customer"]["wordsPerMinute"] > 0
    assert m["type"] == "metrics"


def test_bad_playbooks_are_refused():
    with pytest.raises(PlaybookError, match="negators"):
        parse_playbook("lang: es\nnegators: [no]\nrules: [{id: a, text: t, phrases: [x]}]")
    with pytest.raises(PlaybookError, match="severity"):
        parse_playbook("lang: es\nrules: [{id: a, text: t, phrases: [x], severity: huge}]")
    with pytest.raises(PlaybookError, match="duplicate"):
        parse_playbook(
            "lang: es\nrules: [{id: a, text: t, phrases: [x]}, {id: a, text: t, phrases: [y]}]"
        )
    with pytest.raises(PlaybookError, match="regex"):
        parse_playbook("lang: es\nrules: [{id: a, text: t, regex: ['(']}]")


def test_reload_keeps_previous_on_error_and_applies_changes(tmp_path: Path):
    path = tmp_path / "es.yaml"
    path.write_text("lang: es\nrules: [{id: r1, text: uno, phrases: [hola]}]\n", encoding="utf-8")
    store = PlaybookStore(tmp_path)
    store.load()
    assert [r.id for r in store.get("es").match("customer", "hola")] == ["r1"]
    path.write_text("lang: es\nrules: [ broken", encoding="utf-8")
    store.reload(force=True)
    assert "es" in store.errors and store.get("es").rules[0].id == "r1"
    path.write_text("lang: es\nrules: [{id: r2, text: dos, phrases: [adios]}]\n", encoding="utf-8")
    store.reload(force=True)
    assert [r.id for r in store.get("es").match("customer", "adios")] == ["r2"]
    assert not store.errors


# Real Spanish telephone prompts (Debian asterisk-core-sounds-es transcript list): keypad
# entry of a PIN or password is not "reading it aloud", and none of these is an escalation.
ASTERISK_ES_PROMPTS = [
    "Por favor ingrese su contrasena seguida por la tecla de numero",
    "Por favor ingrese la clave de entrada para la conferencia.",
    "La conferencia está ahora siendo grabada.",
    "Ese agente ya ha sido autenticado. Por favor ingrese su numero de agente seguido por la "
    "tecla de numero.",
    "Clave incorrecta. Por favor, ingrese su numero de agente seguido por la tecla de numero",
    "Usted es el único participante en esta conferencia.",
]


@pytest.mark.parametrize("text", ASTERISK_ES_PROMPTS)
@pytest.mark.parametrize("speaker", ["agent", "customer"])
def test_real_prompts_raise_nothing(store, speaker, text):
    assert fired(store, "es", speaker, text) == []
