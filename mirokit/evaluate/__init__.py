"""Evaluation: GenEval's rules (detector-agnostic) and ShapesEval, GenEval on the shapes world.

Import the submodules directly (`mirokit.evaluate.geneval_rules`, `mirokit.evaluate.shapes_eval`);
nothing heavy is imported here.
"""
