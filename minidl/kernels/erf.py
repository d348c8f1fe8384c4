"""The error function erf, its complement erfc and the normal CDF Phi, on whole arrays, without
SciPy: the math behind F.gelu.

    erf(x) = 2/sqrt(pi) int_0^x e^{-t^2} dt,   erfc(x) = 1 - erf(x),   Phi(x) = erfc(-x/sqrt2) / 2

float64: the rational approximations of the Cephes Math Library (S. L. Moshier, release 2.2,
1992, ``ndtr.c``; the same coefficients are in SciPy's ``scipy/special/cephes/ndtr.c``), of
the forms of W. J. Cody, "Rational Chebyshev approximations for the error function", Math.
Comp. 23 (1969) 631-637:

    |x| < 1:       erf(x)  = x T(x^2) / U(x^2)            (T of degree 4, U monic of degree 5)
    1 <= x < 8:    erfc(x) = e^{-x^2} P(x) / Q(x)         (8, 8)
    x >= 8:        erfc(x) = e^{-x^2} R(x) / S(x)         (5, 6)

with erf(-x) = -erf(x), erfc(-x) = 2 - erfc(x), erf = 1 - erfc for |x| >= 1 (exactly +-1 from
|x| = 6 on, where erfc(x) < 2e-17 is below half an ulp of 1), and e^{-x^2} computed as
e^{-h^2} e^{-(x-h)(x+h)} with h = x rounded to a multiple of 1/128, so that h^2 is exact
(Cephes' ``expx2``): x^2 rounded would cost x^2 ulps of e^{-x^2}. Relative error: erf
within 3 ulps (4.5e-16) on the whole real line, erfc within 2e-15 down to its underflow
(x ~ 27), both held to ``math.erf`` / ``math.erfc`` by tests/test_gelu.py.

float32 (float16 is computed in float32): a single formula, cheap enough for the hot path of
training (GELU on tens of millions of activations per step),

    erf(x) = tanh(x S(x^2)),   x clipped to [-4.5, 4.5],   S a polynomial of degree 6,

where x S(x^2) approximates atanh(erf(x)) (odd, smooth, about 2x/sqrt(pi) near 0).
tanh keeps the result in [-1, 1] and damps the polynomial's error where erf saturates:
d erf = x (1 - erf^2) dS. The coefficients are this module's own weighted minimax fit
(``fit_float32_coefficients``, reproducible; tests check it gives these numbers). Evaluated
in float32: 16 NumPy passes, absolute error < 1.5e-7 over the whole line (PyTorch's float32
erf: 6e-8); erf(+-inf) = +-1 exactly (tanh(x S(x^2)) rounds to 1 at the clip bound, where
x S(x^2) = 16.2). Phi uses the same S, rescaled for x/sqrt2.

Arrays are processed in cache-sized blocks (``map_blocks``): all the passes of one block run
while it sits in the cache, and the blocks are shared among the CPU threads
(``cpu.parallel_for``), so a big array crosses main memory once in and once out. Every
element goes through the same ufuncs whatever the thread count: results do not depend on
it. CuPy arrays go to ``cupyx.scipy.special`` in one call.
"""
import importlib
import math

import numpy as np

from .. import backend
from . import cpu, layout

BLOCK_BYTES = 1 << 19  # bytes per block of each array: 128k float32, 64k float64 elements

# ----------------------------------------------------------------------------- coefficients
# Cephes ndtr.c (highest power first; Q, S and U have a leading coefficient 1, not listed)
P = (2.46196981473530512524E-10, 5.64189564831068821977E-1, 7.46321056442269912687E0,
     4.86371970985681366614E1, 1.96520832956077098242E2, 5.26445194995477358631E2,
     9.34528527171957607540E2, 1.02755188689515710272E3, 5.57535335369399327526E2)
Q = (1.32281951154744992508E1, 8.67072140885989742329E1, 3.54937778887819891062E2,
     9.75708501743205489753E2, 1.82390916687909736289E3, 2.24633760818710981792E3,
     1.65666309194161350182E3, 5.57535340817727675546E2)
R = (5.64189583547755073984E-1, 1.27536670759978104416E0, 5.01905042251180477414E0,
     6.16021097993053585195E0, 7.40974269950448939160E0, 2.97886665372100240670E0)
S = (2.26052863220117276590E0, 9.39603524938001434673E0, 1.20489539808096656605E1,
     1.70814450747565897222E1, 9.60896809063285878198E0, 3.36907645100081516050E0)
T = (9.60497373987051638749E0, 9.00260197203842689217E1, 2.23200534594684319226E3,
     7.00332514112805075473E3, 5.55923013010394962768E4)
U = (3.35617141647503099647E1, 5.21357949780152679795E2, 4.59432382970980127987E3,
     2.26290000613890934246E4, 4.92673942608635921086E4)

# float32: erf(x) = tanh(x S32(x^2)) for |x| <= CLIP32 (lowest power first), from
# fit_float32_coefficients() and rounded to 10 digits
S32 = (1.1283797055e+00, 1.0276548123e-01, -1.8438325609e-04, -6.2571983200e-04,
       8.9712610731e-05, -5.9856757427e-06, 1.5895774595e-07)
CLIP32 = 4.5
ERF32 = tuple(np.float32(c) for c in S32)
# Phi(x) = (1 + tanh(x/sqrt2 S32(x^2/2))) / 2: the same polynomial in x
PHI32 = tuple(np.float32(c / (math.sqrt(2) * 2.0 ** k)) for k, c in enumerate(S32))
PHI_CLIP32 = CLIP32 * math.sqrt(2)


def fit_float32_coefficients(degree=6, bound=CLIP32, points=4501, iterations=40):
    """How S32 was made: the polynomial S with tanh(x S(x^2)) closest to erf(x) on (0, bound].

    The target is atanh(erf x) / x = log((2 - erfc x) / erfc x) / (2x), from ``math.erfc``
    (no cancellation near 1). An error dS changes erf by x (1 - erf^2) dS, so the fit weighs
    each point by that factor, and makes the largest weighted error small (a minimax fit, by
    Lawson's iteratively reweighted least squares). Returns the float64 coefficients, lowest
    power first, and the largest error in erf of the exact polynomial (about 5.8e-8).
    """
    x = np.linspace(bound / points, bound, points)
    erfc_x = np.array([math.erfc(v) for v in x])
    target = np.log((2 - erfc_x) / erfc_x) / (2 * x)
    weight = x * erfc_x * (2 - erfc_x)   # d erf / d S
    basis = np.vander(x * x, degree + 1, increasing=True) * weight[:, None]
    lawson = np.ones_like(x)
    for _ in range(iterations):
        coefficients = np.linalg.lstsq(basis * lawson[:, None], target * weight * lawson,
                                       rcond=None)[0]
        error = np.abs(basis @ coefficients - target * weight)
        lawson *= np.sqrt(error / error.max()) + 1e-6
        lawson /= lawson.max()
    return coefficients, float(error.max())


# ----------------------------------------------------------------------------- blocks
def map_blocks(fn, out, *arrays, scratch=0, dtype=None, passes=8):
    """Call ``fn(*array_blocks, out_block, *scratch_blocks)`` on matching blocks of
    ``arrays`` and ``out`` (one shape; ``out`` C-contiguous or channels-last, the arrays
    copied to its layout where they differ), the blocks shared among the CPU
    threads. Each thread allocates ``scratch`` arrays of ``dtype`` once, each block is
    ``BLOCK_BYTES`` of them. ``passes``: about how many passes over an array the work costs
    (whether threads pay).

    Why this size: every ufunc call takes the GIL for its set-up (about a microsecond), so
    with two threads small blocks spend their time waiting for it, while a block much bigger
    than the L2 cache sends each pass to the L3 cache (on a 2-core Xeon, GELU was fastest
    with blocks of 256 KiB to 1 MiB per array)."""
    flat = [layout.flat(a if layout.like(out, a) else _as_layout_of(out, a))
            for a in arrays] + [layout.flat(out)]
    size, block = flat[-1].size, BLOCK_BYTES // np.dtype(dtype or out.dtype).itemsize

    def part(start, stop):
        tmp = [np.empty(min(block, stop - start), dtype) for _ in range(scratch)]
        with np.errstate(all='ignore'):  # inf * 0 inside: NaN in, NaN out, as PyTorch, silently
            for lo in range(start, stop, block):
                hi = min(lo + block, stop)
                fn(*(f[lo:hi] for f in flat), *(t[:hi - lo] for t in tmp))
    cpu.parallel_for(part, size, items=size * passes)


def _as_layout_of(out, a):
    """a copied into out's memory layout (C-contiguous or channels-last)."""
    return layout.to_channels_last(a) if layout.is_channels_last(out) else \
        np.ascontiguousarray(a)


def compute_dtype(dtype):
    """float64 for float64 (Cephes), float32 for float32 and float16 (the tanh form)."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _poly(z, coefficients, out, monic=False):
    """out = c0 z^n + c1 z^(n-1) + ... + cn by Horner's rule (Cephes' polevl; monic: a
    leading 1 z^(n+1) before c0, Cephes' p1evl)."""
    if monic:
        np.add(z, coefficients[0], out=out)
    else:
        np.multiply(z, coefficients[0], out=out)
        np.add(out, coefficients[1], out=out)
    for c in coefficients[1 if monic else 2:]:
        np.multiply(out, z, out=out)
        np.add(out, c, out=out)
    return out


def _exp_minus_square(m, out, t1, t2):
    """out = exp(-m^2) for m >= 0 (Cephes' expx2): h = m rounded to a multiple of 1/128 has
    h^2 exact, and m^2 = h^2 + (m - h)(m + h) is not rounded as one number."""
    np.multiply(m, 128.0, out=t1)
    np.rint(t1, out=t1)
    np.multiply(t1, 1 / 128, out=t1)          # h
    np.subtract(m, t1, out=out)               # m - h
    np.add(m, t1, out=t2)
    np.multiply(t2, out, out=t2)              # (m - h)(m + h)
    np.multiply(t1, t1, out=t1)               # h^2, exact
    np.negative(t1, out=t1)
    np.exp(t1, out=out)
    np.negative(t2, out=t2)
    np.exp(t2, out=t2)
    np.multiply(out, t2, out=out)
    return out


def _erf_small64(x, out, s, z, q):
    """out = x T(x^2) / U(x^2) at x clipped to [-1, 1] (erf for |x| <= 1); s = the clipped x."""
    np.clip(x, -1.0, 1.0, out=s)
    np.multiply(s, s, out=z)
    _poly(z, T, out)
    _poly(z, U, q, monic=True)
    np.multiply(out, s, out=out)
    np.divide(out, q, out=out)
    return out


def _erfc_large64(a, out, e, t1, t2):
    """out = erfc(a) for a >= 1 (0 from a = 27.3 on, where e^{-a^2} underflows). a is
    clipped in place to [1, 28] (NaN stays NaN), so that a = inf gives 0, not inf/inf."""
    np.clip(a, 1.0, 28.0, out=a)
    _exp_minus_square(a, e, t1, t2)
    _poly(a, P, out)
    _poly(a, Q, t1, monic=True)
    np.divide(out, t1, out=out)
    far = a >= 8.0
    if far.any():  # rare: Cephes' second rational beyond 8
        af = a[far]
        out[far] = _poly(af, R, np.empty_like(af)) / _poly(af, S, np.empty_like(af), monic=True)
    np.multiply(out, e, out=out)
    return out


def erf_block64(x, out, s, z, q, a, e):
    """erf of a float64 block into ``out``, with five float64 scratch blocks."""
    small = _erf_small64(x, out, s, z, q)         # out: the |x| <= 1 formula
    inside = np.equal(s, x)                       # |x| <= 1 (False for NaN)
    np.abs(x, out=a)
    np.minimum(a, 6.0, out=a)                     # erf = +-1 from 6 on (NaN stays NaN)
    _erfc_large64(a, z, e, s, q)
    np.subtract(1.0, z, out=z)
    np.copysign(z, x, out=z)
    np.copyto(small, z, where=~inside)
    return out


def erfc_block64(x, out, s, z, q, a, e):
    """erfc of a float64 block into ``out``, with five float64 scratch blocks."""
    _erf_small64(x, out, s, z, q)
    np.subtract(1.0, out, out=out)                # 1 - erf(x) for |x| <= 1
    inside = np.equal(s, x)
    np.abs(x, out=a)
    _erfc_large64(a, z, e, s, q)                  # erfc(|x|)
    np.subtract(2.0, z, out=q)
    np.copyto(z, q, where=x < 0)                  # erfc(-|x|) = 2 - erfc(|x|)
    np.copyto(out, z, where=~inside)
    return out


def _tanh_form32(x, out, s, z, coefficients, bound):
    """out = tanh(x S(x^2)) with x clipped to [-bound, bound], in float32 (s, z: scratch)."""
    np.clip(x, -bound, bound, out=s)
    np.multiply(s, s, out=z)
    np.multiply(z, coefficients[-1], out=out)
    for c in coefficients[-2:0:-1]:
        np.add(out, c, out=out)
        np.multiply(out, z, out=out)
    np.add(out, coefficients[0], out=out)
    np.multiply(out, s, out=out)
    np.tanh(out, out=out)
    return out


def erf_block32(x, out, s, z):
    """erf of a float32 or float16 block into a float32 ``out`` (two float32 scratch blocks)."""
    return _tanh_form32(x, out, s, z, ERF32, CLIP32)


def cdf_block(x, out, *scratch):
    """Phi(x), the standard normal CDF, of a block into ``out`` (of ``compute_dtype``), with
    scratch blocks of that dtype (``SCRATCH``: six for float64, two for float32).

    float64: erfc(-x/sqrt2) / 2, which keeps its relative precision for negative x, where
    (1 + erf(x/sqrt2)) / 2 would cancel (to about x^2 ulps, from the rounding of x/sqrt2:
    1e-14 at x = -8). float32: (1 + tanh(x S(x^2/2)/sqrt2)) / 2, absolute error < 1e-7."""
    if out.dtype == np.float64:
        np.multiply(x, -1 / math.sqrt(2), out=scratch[0])
        erfc_block64(scratch[0], out, *scratch[1:6])
    else:
        _tanh_form32(x, out, scratch[0], scratch[1], PHI32, PHI_CLIP32)
        np.add(out, 1.0, out=out)
    np.multiply(out, 0.5, out=out)
    return out


SCRATCH = {np.dtype(np.float64): 6, np.dtype(np.float32): 2}  # scratch blocks cdf_block needs


# ----------------------------------------------------------------------------- whole arrays
def _special():
    """cupyx.scipy.special, loaded by name when a CuPy array arrives (backend.py stays the
    only module with a CuPy import statement: tests/test_layout.py)."""
    return importlib.import_module('cupyx.scipy.special')


def _whole(x, block64, block32, name):
    if backend.on_gpu(x):
        return getattr(_special(), name)(x)
    x = np.asarray(x)
    if x.dtype.kind != 'f' or x.dtype.itemsize > 8:
        raise TypeError(f"{name}: expected a float16, float32 or float64 array, got {x.dtype}")
    out = np.empty(x.shape, x.dtype)
    dtype = compute_dtype(x.dtype)
    if dtype == np.float64:
        map_blocks(block64, out, x, scratch=5, dtype=dtype)
    elif x.dtype == np.float32:
        map_blocks(block32, out, x, scratch=2, dtype=dtype)
    else:  # float16: computed in float32, rounded once
        def block16(xb, o, s, z, t):
            np.copyto(o, block32(xb, t, s, z), casting='same_kind')
        map_blocks(block16, out, x, scratch=3, dtype=dtype)
    return out


def erf(x):
    """erf(x) of a float16/32/64 NumPy or CuPy array, in its dtype (see the module docstring
    for the method and accuracy). erf(+-inf) = +-1, erf(NaN) = NaN."""
    return _whole(x, erf_block64, erf_block32, 'erf')


def _erfc_block32(x, out, s, z):
    erf_block32(x, out, s, z)
    return np.subtract(1.0, out, out=out)


def erfc(x):
    """erfc(x) = 1 - erf(x), in x's dtype. float64: to a few ulps, relative, down to its
    underflow near x = 27; float32 and float16: 1 - erf(x) (absolute error < 2e-7, no
    relative precision in the far right tail)."""
    return _whole(x, erfc_block64, _erfc_block32, 'erfc')
