"""Rules and risk gates: every order passes :func:`ttg_lab.rules.gate.check_order`."""
