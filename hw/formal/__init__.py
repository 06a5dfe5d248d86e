"""Formal harnesses of the data path, the array's finalizer and the stream protocols, and
their runner.

Each harness is an Amaranth component whose ports are free inputs of the proof (the solver
chooses them) and whose body instantiates the unit under test and states properties with
``Assert`` (and, for the environment, ``Assume``). Nothing here is part of the generated RTL.
One harness per module:

* :mod:`.product_lanes`: ``ProductLanesProof`` (:class:`hw.lanes.ProductLanes`, all inputs);
* :mod:`.bias_aligner`: ``BiasAlignerProof`` (:class:`hw.lanes.BiasAligner`, all inputs);
* :mod:`.rounding`: ``RoundingProof`` (:class:`hw.rounding.Rounder` against the contract's
  rounding, all inputs);
* :mod:`.finalizer`: ``FinalizerProof`` (the array's pipelined :class:`hw.finalizer.Finalizer`
  against the unpipelined aligner and rounder, every entry);
* :mod:`.array_product`: ``ArrayProductProof`` (row aligner into a PE: the exact products,
  k-induction);
* :mod:`.dot_stream`: ``DotStreamProof`` (:class:`hw.dot.ShiftDotUnit`'s stream rules);
* :mod:`.handshake`: ``HandshakeRulesProof`` (valid/ready rules of any component).

``fault`` parameters wrap the unit under test in a deliberately broken variant, for the tests
that check that the proofs can fail. :mod:`.runner` proves a harness: :func:`run_sat` (Yosys
``sat``: all inputs of a combinational harness, or a bounded check) and :func:`run_sby`
(SymbiYosys: ``bmc`` or k-induction ``prove``).
"""

from .array_product import ARRAY_FAULTS, ArrayProductProof
from .bias_aligner import BIAS_FAULTS, BiasAlignerProof, bias_shift
from .dot_stream import STREAM_FAULTS, DotStreamProof, faulty_dot_unit
from .finalizer import FINALIZER_FAULTS, FinalizerProof, feedforward_problems
from .handshake import HandshakeRulesProof, handshake_channels
from .product_lanes import PRODUCT_FAULTS, ProductLanesProof, fault_point, product_shift
from .rounding import ROUNDING_FAULTS, RoundingProof
from .runner import FormalResult, default_root, run_sat, run_sby

__all__ = [
    "ARRAY_FAULTS", "BIAS_FAULTS", "FINALIZER_FAULTS", "PRODUCT_FAULTS", "ROUNDING_FAULTS",
    "STREAM_FAULTS", "ArrayProductProof", "BiasAlignerProof", "DotStreamProof",
    "FinalizerProof", "FormalResult", "HandshakeRulesProof", "ProductLanesProof",
    "RoundingProof", "bias_shift", "default_root", "fault_point", "faulty_dot_unit",
    "feedforward_problems", "handshake_channels", "product_shift", "run_sat", "run_sby",
]
