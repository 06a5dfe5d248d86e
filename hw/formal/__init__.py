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
* :mod:`.handshake`: ``HandshakeRulesProof`` (valid/ready rules of any component);
* :mod:`.registers`: ``RegisterBlockProof`` (:class:`hw.csr.CSRBlock` against the register
  map's semantics, bounded);
* :mod:`.drain_chain`: ``DrainChainProof`` (:class:`hw.drain.DrainChain` delivers every
  captured entry once, in order, bounded);
* :mod:`.weight_loader`: ``WeightLoaderProof`` (:class:`hw.loader.WeightLoader` never writes a
  bank in use, bounded);
* :mod:`.tile_sequencer`: ``TileSequencerProof`` (:class:`hw.sequencer.TileSequencer` ends
  every tile once, in stream order, with its ragged edges, bounded).

``fault`` parameters wrap the unit under test in a deliberately broken variant, for the tests
that check that the proofs can fail. :mod:`.runner` proves a harness: :func:`run_sat` (Yosys
``sat``: all inputs of a combinational harness, or a bounded check) and :func:`run_sby`
(SymbiYosys: ``bmc`` or k-induction ``prove``).
"""

from .array_product import ARRAY_FAULTS, ArrayProductProof
from .bias_aligner import BIAS_FAULTS, BiasAlignerProof, bias_shift
from .dot_stream import STREAM_FAULTS, DotStreamProof, faulty_dot_unit
from .drain_chain import DRAIN_FAULTS, DrainChainProof
from .finalizer import FINALIZER_FAULTS, FinalizerProof, feedforward_problems
from .handshake import HandshakeRulesProof, handshake_channels
from .product_lanes import PRODUCT_FAULTS, ProductLanesProof, fault_point, product_shift
from .registers import REGISTER_FAULTS, RegisterBlockProof
from .rounding import ROUNDING_FAULTS, RoundingProof
from .runner import FormalResult, default_root, run_sat, run_sby
from .tile_sequencer import SEQUENCER_FAULTS, TileSequencerProof
from .weight_loader import LOADER_FAULTS, WeightLoaderProof

__all__ = [
    "ARRAY_FAULTS", "BIAS_FAULTS", "DRAIN_FAULTS", "FINALIZER_FAULTS", "LOADER_FAULTS",
    "PRODUCT_FAULTS", "REGISTER_FAULTS", "ROUNDING_FAULTS", "SEQUENCER_FAULTS", "STREAM_FAULTS",
    "TileSequencerProof", "ArrayProductProof",
    "BiasAlignerProof", "DotStreamProof", "DrainChainProof", "FinalizerProof", "FormalResult",
    "HandshakeRulesProof", "ProductLanesProof", "RegisterBlockProof", "RoundingProof",
    "WeightLoaderProof",
    "bias_shift", "default_root", "fault_point", "faulty_dot_unit",
    "feedforward_problems", "handshake_channels", "product_shift", "run_sat", "run_sby",
]
