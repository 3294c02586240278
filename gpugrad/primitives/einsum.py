"""einsum: Einstein summation over any number of operands, differentiated by more einsums.

ops.py hands the primitive an explicit equation ("ij,jk->ik": an output after "->", no
ellipsis, no subscript repeated within one operand), having checked it against the shapes.
"""
from ..backend import xp_of
from ..dispatch import primitive
from ._common import _needs_grad
from .shapes import broadcast_to, reshape


def _parse(equation):
    inputs, output = equation.split("->")
    return inputs.split(","), output


@primitive(kind="contraction")
def einsum(*operands, equation):
    xp = xp_of(operands[0])
    # optimize=True contracts pairs through tensordot (BLAS) rather than a nested loop.
    return xp.asarray(xp.einsum(equation, *operands, optimize=len(operands) > 1))


@einsum.defvjp
def einsum_vjp(g, out, *operands, equation):
    # d out / d operand k contracts g with every other operand onto operand k's subscripts.
    # A subscript that only operand k has (summed away in the output) is absent from that
    # contraction: its gradient is the same along it, so the result is broadcast back over it.
    # A subscript of size 1 in operand k but larger elsewhere comes out at the larger size,
    # and the tape sums it back, as for any broadcast.
    inputs, output = _parse(equation)
    grads = []
    for k, (subscripts, operand) in enumerate(zip(inputs, operands)):
        if not _needs_grad(operand):
            grads.append(None)
            continue
        others = [s for i, s in enumerate(inputs) if i != k]
        seen = set(output).union(*others)
        kept = "".join(c for c in subscripts if c in seen)
        grad = einsum(g, *[o for i, o in enumerate(operands) if i != k],
                      equation=",".join([output] + others) + "->" + kept)
        if kept != subscripts:
            sides = dict(zip(kept, grad.shape))
            grad = reshape(grad, shape=tuple(sides.get(c, 1) for c in subscripts))
            grad = broadcast_to(grad, shape=tuple(sides.get(c, side) for c, side in zip(subscripts, operand.shape)))
        grads.append(grad)
    return tuple(grads)
