"""Make the STT part of the redaction corpus: espeak-ng reads callers' lines, faster-whisper
base (the model the tests use) transcribes them, and the transcripts are printed as YAML drafts.

The spans are labelled by hand afterwards (the transcript decides what the substring is), and
the items go into tests/coach/redaction/<lang>.yaml with `source: stt`. Not run by CI.

    python -m bench.coach.redact_audio [--lang es|en] > /tmp/drafts.yaml
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from coach.resample import StreamResampler
from stt.engine import SAMPLE_RATE, EngineConfig, WhisperEngine
from stt.models import ensure_base

ROOT = Path(__file__).resolve().parents[2]

LINES: dict[str, list[tuple[str, str]]] = {
    # (what the caller says, the kind it holds: "" for none)
    "es": [
        ("Mi tarjeta es cuatro cinco cuatro cero, uno dos tres cuatro, cinco seis siete ocho, nueve cero uno dos.", "card"),
        ("El número de la tarjeta es 4111 1111 1111 1111.", "card"),
        ("Le digo la tarjeta: cuarenta y cinco, cuarenta, doce, treinta y cuatro, cincuenta y seis, setenta y ocho, noventa, diez.", "card"),
        ("La Visa es cinco cuatro cero cero, cero cero, uno uno, dos dos dos dos, tres tres tres tres.", "card"),
        ("Tarjeta tres siete ocho dos, ocho dos dos cuatro, seis tres uno, cero cero cinco.", "card"),
        ("El código de seguridad es siete tres dos.", "cvv"),
        ("El CVV es cuatro cinco seis.", "cvv"),
        ("Los tres números de atrás son nueve nueve uno.", "cvv"),
        ("Caduca en doce del veintisiete.", "expiry"),
        ("La fecha de caducidad es cero cuatro, veintiocho.", "expiry"),
        ("Mi DNI es uno dos tres cuatro cinco seis siete ocho zeta.", "national_id"),
        ("El DNI es cincuenta y uno, ochocientos veinte, trescientos cuarenta, letra T.", "national_id"),
        ("Mi NIE es equis uno dos tres cuatro cinco seis siete ele.", "national_id"),
        ("Mi teléfono es seis uno dos, tres cuatro cinco, seis siete ocho.", "phone"),
        ("Puede llamarme al seiscientos doce, treinta y cuatro, cincuenta y seis, setenta y ocho.", "phone"),
        ("Mi móvil es el 699 88 77 66.", "phone"),
        ("Mi correo es juan punto perez arroba gmail punto com.", "email"),
        ("El email es maria garcia arroba hotmail punto es.", "email"),
        ("Nací el quince de marzo de mil novecientos ochenta y cinco.", "dob"),
        ("Mi fecha de nacimiento es el 3 de julio de 1990.", "dob"),
        ("Mi IBAN es E S noventa y uno, dos uno cero cero, cero cuatro uno ocho, cuatro cinco cero dos, cero cero cero cinco, uno tres tres dos.", "iban"),
        ("Tengo treinta y cinco años y llevo diez con ustedes.", ""),
        ("Le llamo en dos minutos, no se preocupe.", ""),
        ("Quiero el plan de veinte euros al mes.", ""),
        ("El número de pedido es cuatro cinco seis siete ocho nueve.", ""),
        ("Tengo una incidencia abierta, la referencia es 2023 4567.", ""),
        ("Llevo tres semanas esperando a que vengan.", ""),
        ("La factura de marzo me vino con cincuenta euros de más.", ""),
    ],
    "en": [
        ("My card number is four five four zero, one two three four, five six seven eight, nine zero one two.", "card"),
        ("The card is 4111 1111 1111 1111.", "card"),
        ("The security code is seven three two.", "cvv"),
        ("The CVV is four five six.", "cvv"),
        ("It expires on twelve twenty seven.", "expiry"),
        ("My phone number is two oh two, five five five, oh one four three.", "phone"),
        ("My email is john dot smith at gmail dot com.", "email"),
        ("My date of birth is March third, nineteen ninety.", "dob"),
        ("My social security number is one two three, four five, six seven eight nine.", "national_id"),
        ("I am thirty five years old.", ""),
        ("I will call you back in two minutes.", ""),
        ("I want the twenty dollar plan.", ""),
        ("My order number is four five six seven eight nine.", ""),
    ],
}  # fmt: skip

HELD_OUT: dict[str, list[tuple[str, str]]] = {
    # A second batch, transcribed after the redactor was tuned on the first (`--held-out`).
    "es": [
        ("Le doy la tarjeta, cinco uno cero cinco, uno cero cinco uno, cero cinco uno cero, cinco uno cero cero.", "card"),
        ("Apunte mi Mastercard, cinco cuatro dos cinco, dos tres tres cuatro, tres cero uno cero, nueve nueve cero tres.", "card"),
        ("Tengo la tarjeta aquí, es el cuatro nueve uno seis, tres tres ocho cinco, cero seis cero ocho, dos ocho tres dos.", "card"),
        ("El código de seguridad de la tarjeta es seis seis dos.", "cvv"),
        ("Detrás de la tarjeta pone cinco cero nueve.", "cvv"),
        ("La tarjeta caduca en agosto de dos mil veintiséis.", "expiry"),
        ("La fecha de caducidad es once del veintiocho.", "expiry"),
        ("Mi DNI es siete uno dos tres cuatro cinco seis siete uve doble.", "national_id"),
        ("El número de mi documento de identidad es cuatro cinco seis siete ocho nueve cero uno ge.", "national_id"),
        ("Mi teléfono móvil es el seis cuatro cuatro, cincuenta y cinco, sesenta y seis, setenta y siete.", "phone"),
        ("Puede llamarme al nueve uno seis, dos tres cuatro, cinco seis siete.", "phone"),
        ("Mi correo es laura punto sanchez arroba hotmail punto com.", "email"),
        ("Mi fecha de nacimiento es el siete de octubre de mil novecientos noventa y dos.", "dob"),
        ("Nací el veinticinco de diciembre de mil novecientos sesenta y ocho.", "dob"),
        ("Llevo dos años con ustedes y pago cuarenta y dos euros al mes.", ""),
        ("El pedido siete siete seis seis cinco cinco cuatro cuatro llegó roto.", ""),
        ("Tengo sesenta y siete años y no entiendo la factura.", ""),
        ("Le llamo otra vez en diez minutos.", ""),
    ],
    "en": [
        ("My card number is five one oh five, one oh five one, oh five one oh, five one oh oh.", "card"),
        ("The security code is six six two.", "cvv"),
        ("The card expires in November twenty twenty nine.", "expiry"),
        ("My phone number is four one five, five five five, oh one nine eight.", "phone"),
        ("My email is rachel dot green at outlook dot com.", "email"),
        ("I was born on May fifth, nineteen eighty three.", "dob"),
        ("I have had this plan for three years.", ""),
        ("My order number is eight eight two two three three four four.", ""),
    ],
}  # fmt: skip


def synthesise(text: str, lang: str, path: Path) -> npt.NDArray[np.float32]:
    """espeak-ng's reading of `text`, as 16 kHz float32."""
    subprocess.run(
        ["espeak-ng", "-v", lang, "-s", "120", "-g", "4", "-w", str(path), text],
        check=True,
        timeout=60,
    )
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        pcm = (np.frombuffer(w.readframes(w.getnframes()), dtype="<i2") / 32768).astype(np.float32)
    resample = StreamResampler(rate, SAMPLE_RATE)
    return np.concatenate([resample(pcm), resample.flush()])


def main() -> None:
    """Print one YAML draft item per line read."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", choices=sorted(LINES), action="append")
    parser.add_argument("--held-out", action="store_true", help="the second batch of lines")
    args = parser.parse_args()
    lines = HELD_OUT if args.held_out else LINES
    model = ensure_base(ROOT / "models" / "faster-whisper-base")
    engine = WhisperEngine(EngineConfig(str(model.path)))
    with tempfile.TemporaryDirectory() as tmp:
        for lang in args.lang or sorted(lines):
            print(f"# {lang}")
            for n, (line, kind) in enumerate(lines[lang]):
                audio = synthesise(line, lang, Path(tmp) / f"{lang}-{n}.wav")
                hyp = engine.decode(audio, final=True, lang=lang)
                text = hyp.text.strip().replace('"', '\\"')
                print(f'- t: "{text}"\n  source: stt\n  said: "{line}"\n  kind: {kind or "none"}')


if __name__ == "__main__":
    main()
