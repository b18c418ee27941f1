"""Evaluation: GenEval's rules (detector-agnostic) and report figures.

Import the submodules directly (`mirokit.evaluate.geneval_rules`, `mirokit.evaluate.report`);
nothing heavy is imported here. ShapesEval (GenEval on the shapes world) is in `mirokit.world.shapes_eval`.
"""
