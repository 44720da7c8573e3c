"""Stream processing: the Faust app, rules, agents and tables."""
