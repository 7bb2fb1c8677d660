"""The sample's RSA signing key, derived from the seed by a deterministic prime search."""

from __future__ import annotations

import math
import random

from cryptography.hazmat.primitives.asymmetric import rsa

_SMALL_PRIMES = [p for p in range(3, 2000, 2) if all(p % d for d in range(3, int(p**0.5) + 1, 2))]
_SMALL_PRODUCT = math.prod(_SMALL_PRIMES)


def _probable_prime(n: int, rng: random.Random, rounds: int = 24) -> bool:
    """Miller-Rabin with ``rounds`` random bases (after a cheap gcd with the small primes)."""
    if math.gcd(n, _SMALL_PRODUCT) != 1:
        return False
    d, s = n - 1, 0
    while not d & 1:
        d, s = d >> 1, s + 1
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(rng: random.Random, bits: int, e: int) -> int:
    """A ``bits``-bit prime with its two top bits set (so two make a ``2 * bits``-bit modulus)."""
    candidate = rng.getrandbits(bits) | (3 << (bits - 2)) | 1
    while not (math.gcd(candidate - 1, e) == 1 and _probable_prime(candidate, rng)):
        candidate += 2
    return candidate


def sample_key(seed: int = 7) -> rsa.RSAPrivateKey:
    """The sample's 2048-bit RSA signing key, the same for the same seed (``e = 65537``)."""
    rng = random.Random(seed)
    e = 65537
    p = _prime(rng, 1024, e)
    q = _prime(rng, 1024, e)
    while q == p:
        q = _prime(rng, 1024, e)
    d = pow(e, -1, math.lcm(p - 1, q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p,
        q,
        d,
        rsa.rsa_crt_dmp1(d, p),
        rsa.rsa_crt_dmq1(d, q),
        rsa.rsa_crt_iqmp(p, q),
        rsa.RSAPublicNumbers(e, p * q),
    )
    return numbers.private_key()
