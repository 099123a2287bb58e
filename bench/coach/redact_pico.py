"""Make the Pico part of the redaction corpus: SVOX Pico reads callers' lines (the demo's voices:
the female reading and the lowered male one, `bench.voices`), the audio goes through the 8 kHz
telephone path (`bench.demo_voice.line_audio`), faster-whisper base transcribes it, and the
transcripts are printed as YAML drafts.

Each line's split (`tune` or `held`) is fixed here, before any transcript is seen; the voice
alternates female/male by position, and English lines alternate en-US/en-GB. A line with " | "
is read as several finals of one speaker (a `seq`). The spans are labelled by hand from the
transcripts into tests/coach/redaction/stt_pico.yaml (`source: stt-pico`) and
stt_pico_holdout.yaml (`source: stt-pico-holdout`). Not run by CI.

    nice -n 19 python -m bench.coach.redact_pico [--split tune|held] > /tmp/drafts.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.demo_voice import line_audio
from bench.voices import Voice
from stt.engine import EngineConfig, WhisperEngine
from stt.models import ensure_base

ROOT = Path(__file__).resolve().parents[2]
PHONE_RATE = 8000

# (split, lang, what the caller says, the kinds it holds: "" for none)
LINES: list[tuple[str, str, str, str]] = [
    ("tune", "es", "Mi tarjeta es cuatro cinco cuatro cero, uno dos tres cuatro, cinco seis siete ocho, nueve cero uno dos.", "card"),
    ("tune", "es", "Le doy la tarjeta. | Cuatro nueve uno seis, tres tres ocho cinco. | Cero seis cero ocho, dos ocho tres dos.", "card"),
    ("tune", "es", "El número de la tarjeta es cuarenta y cinco, treinta y nueve, cincuenta y siete, ochenta y siete, sesenta y tres, sesenta y dos, catorce, ochenta y seis.", "card"),
    ("tune", "es", "El código de seguridad es siete tres dos.", "cvv"),
    ("tune", "es", "Y el CVV. | Cuatro cinco seis.", "cvv"),
    ("tune", "es", "La tarjeta caduca en diciembre de dos mil veintisiete.", "expiry"),
    ("tune", "es", "La fecha de caducidad es cero cuatro, veintiocho.", "expiry"),
    ("tune", "es", "Mi DNI es uno dos tres cuatro cinco seis siete ocho zeta.", "national_id"),
    ("tune", "es", "Mi NIE es equis, uno dos tres cuatro cinco seis siete, ele.", "national_id"),
    ("tune", "es", "Mi teléfono es seis uno dos, tres cuatro cinco, seis siete ocho.", "phone"),
    ("tune", "es", "Puede llamarme al seiscientos doce, treinta y cuatro, cincuenta y seis, setenta y ocho.", "phone"),
    ("tune", "es", "Mi correo es juan punto perez arroba gmail punto com.", "email"),
    ("tune", "es", "Mi IBAN es E S noventa y uno, dos uno cero cero, cero cuatro uno ocho, cuatro cinco cero dos, cero cero cero cinco, uno tres tres dos.", "iban"),
    ("tune", "es", "Nací el quince de marzo de mil novecientos ochenta y cinco.", "dob"),
    ("tune", "es", "Tengo treinta y cinco años y llevo diez con ustedes.", ""),
    ("tune", "es", "El número de pedido es cuatro cinco seis siete ocho nueve.", ""),
    ("tune", "es", "La factura de marzo me vino con cincuenta euros de más.", ""),
    ("tune", "es", "Le llamo en dos minutos, no se preocupe.", ""),
    ("tune", "es", "Tengo una incidencia abierta, la referencia es dos mil veintitrés cuatro cinco seis siete.", ""),
    ("tune", "en", "My card number is four five four zero, one two three four, five six seven eight, nine zero one two.", "card"),
    ("tune", "en", "The security code is seven three two.", "cvv"),
    ("tune", "en", "It expires in December twenty twenty seven.", "expiry"),
    ("tune", "en", "My phone number is two oh two, five five five, oh one four three.", "phone"),
    ("tune", "en", "My email is john dot smith at gmail dot com.", "email"),
    ("tune", "en", "My date of birth is the third of March, nineteen ninety.", "dob"),
    ("tune", "en", "I am thirty five years old and I have had the plan for ten years.", ""),
    ("tune", "en", "My order number is four five six seven eight nine.", ""),
    ("held", "es", "Apunte mi Mastercard, cinco cuatro dos cinco, dos tres tres cuatro, tres cero uno cero, nueve nueve cero tres.", "card"),
    ("held", "es", "Le paso el número de la tarjeta. | Cinco cinco cero cero, cero cero cero cero. | Cero cero cero cero, cero cero cero cuatro.", "card"),
    ("held", "es", "Es una Visa, cuatro dos seis tres, nueve ocho dos seis, cuatro cero dos seis, nueve dos nueve nueve.", "card"),
    ("held", "es", "El código de detrás de la tarjeta es cinco cero nueve.", "cvv"),
    ("held", "es", "Los tres números de seguridad son ocho ocho uno.", "cvv"),
    ("held", "es", "Caduca en agosto del veintiséis.", "expiry"),
    ("held", "es", "La fecha de caducidad es once del veintinueve.", "expiry"),
    ("held", "es", "Mi DNI es siete uno dos tres cuatro cinco seis siete, uve doble.", "national_id"),
    ("held", "es", "Mi NIE es i griega, nueve ocho siete seis cinco cuatro tres, te.", "national_id"),
    ("held", "es", "Mi móvil es el seis cuatro cuatro, cincuenta y cinco, sesenta y seis, setenta y siete.", "phone"),
    ("held", "es", "Llámeme al nueve uno seis, dos tres cuatro, cinco seis siete.", "phone"),
    ("held", "es", "Mi correo es laura punto sanchez arroba hotmail punto es.", "email"),
    ("held", "es", "Mi IBAN es E S setenta y nueve, dos uno cero cero, cero ocho uno tres, seis uno cero uno, dos tres cuatro cinco, seis siete ocho nueve.", "iban"),
    ("held", "es", "Mi fecha de nacimiento es el siete de octubre de mil novecientos noventa y dos.", "dob"),
    ("held", "es", "Llevo dos años con ustedes y pago cuarenta y dos euros al mes.", ""),
    ("held", "es", "El pedido siete siete seis seis cinco cinco cuatro cuatro llegó roto.", ""),
    ("held", "es", "Tengo sesenta y siete años y no entiendo la factura.", ""),
    ("held", "es", "Me cobraron tres veces ciento veinte euros en noviembre.", ""),
    ("held", "en", "My card number is five one oh five, one oh five one, oh five one oh, five one oh oh.", "card"),
    ("held", "en", "The CVV on the back is six six two.", "cvv"),
    ("held", "en", "The card expires in November twenty twenty nine.", "expiry"),
    ("held", "en", "You can reach me on four one five, five five five, oh one nine eight.", "phone"),
    ("held", "en", "My email is rachel dot green at outlook dot com.", "email"),
    ("held", "en", "I was born on May fifth, nineteen eighty three.", "dob"),
    ("held", "en", "I have had this plan for three years and pay forty dollars a month.", ""),
]  # fmt: skip


def voice_for(n: int, lang: str) -> Voice:
    """The n-th line's voice: female and male (lowered pitch and formants) in turn."""
    ident = "es-ES" if lang == "es" else ("en-US", "en-GB")[(n // 2) % 2]
    if n % 2 == 0:
        return Voice(f"pico-{ident}", "pico", ident, "f", 100, 100)
    return Voice(f"pico-{ident}-male", "pico", ident, "m", 110, 75, 0.88)


def main() -> None:
    """Print one YAML draft item (or `seq`) per line read."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("tune", "held"), action="append")
    args = parser.parse_args()
    model = ensure_base(ROOT / "models" / "faster-whisper-base")
    engine = WhisperEngine(EngineConfig(str(model.path)))
    for n, (split, lang, line, kind) in enumerate(LINES):
        if args.split and split not in args.split:
            continue
        voice = voice_for(n, lang)
        texts = []
        for part in line.split(" | "):
            audio = line_audio(voice, part, PHONE_RATE)
            hyp = engine.decode(audio, final=True, lang=lang)
            texts.append(hyp.text.strip().replace('"', '\\"'))
        shown = " | ".join(texts)
        print(f'# {split} {voice.name} kind={kind or "none"} said="{line}"\n- {lang}: "{shown}"')


if __name__ == "__main__":
    main()
