# The two commands of the README. Everything they need (Docker engine, debootstrap, virtualenv,
# test images) is installed and built by the scripts under tests/harness/ when missing.
.PHONY: demo test bench clean

demo: ## Run the main job (playbooks/site.yml) on the local default
	tests/harness/demo.sh

test: ## Run the full test suite (lint, unit, packaging, every Molecule scenario)
	tests/harness/test.sh

bench: ## Benchmarks
	tests/harness/bench-base.sh

clean:
	-docker rm -f anvil-demo
	rm -rf .cache inventories/sandbox/generated
