"""Model references: the tiny offline test model, the embedded SmolLM2 default, and path resolution.

Imported by trainers, evaluators and orchestrator; imports none of them.
"""
