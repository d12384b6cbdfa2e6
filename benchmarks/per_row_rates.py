"""Per-core rates (CPU seconds, process_time) of the Paillier operations a run does per row, at 2048 and 3072 bits.

    python benchmarks/per_row_rates.py

Prints one JSON line: operations per CPU second for the owner's encryption (step 4),
encryption under another party's key (step 5), the TTP's combination with one masker
(step 6: a product and a re-randomisation) and half-CRT decryption (step 6), on 300
values each. The national-scale table of docs/benchmarks.md is computed from them.
"""
import time, secrets, json
from mpcactors.crypto import paillier
from mpcactors.actors.hooks import mask_and_rerandomise
out = {}
for bits in (2048, 3072):
    pub, sec = paillier.generate_keypair(bits=bits, context=b"x"*16)
    wire = pub.to_wire(); n2 = pub.n**2
    half = 2 ** (paillier.half_crt_plaintext_bits(bits) - 1)
    pts = [secrets.randbelow(half) for _ in range(300)]
    def rate(f, *a):
        f(*[x[:3] if isinstance(x, list) else x for x in a])
        t = time.process_time(); f(*a); return round(300 / (time.process_time() - t))
    cts = sec.encrypt_raw(pts)
    ms = [secrets.randbelow(n2) for _ in range(300)]
    out[bits] = {
        "owner_encrypt": rate(sec.encrypt_raw, pts),
        "public_encrypt": rate(paillier.encrypt_raw, wire, pts),
        "combine_1_masker": rate(lambda o, m: mask_and_rerandomise(wire, o, [m]), cts, ms),
        "half_crt_decrypt": rate(lambda c: sec.decrypt_raw(c, below_half_p=True), cts),
    }
print(json.dumps(out))
