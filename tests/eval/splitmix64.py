"""splitmix64 (Steele, Lea, Flood, OOPSLA 2014) written from the paper, independently of
src/eval/splitmix64.h: the references of the seeded evaluations (passkey keys, few-shot draws,
sampling uniforms) share it."""
MASK64 = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)
