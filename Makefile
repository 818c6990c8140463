# The two commands of the README. Everything they need (Docker engine, debootstrap, virtualenv,
# test images) is installed and built by the scripts under tests/harness/ when missing.
.PHONY: demo test bench bench-roles bench-inventory bench-deploy bench-provision bench-site bench-web clean

demo: ## The whole lifecycle on the local Hetzner sandbox: provision, site, the app with its database, a backup, the drill, proof
	tests/harness/demo.sh

test: ## Run the full test suite (lint, unit, packaging, every Molecule scenario, the end-to-end test)
	tests/harness/test.sh

bench: bench-roles bench-inventory bench-deploy bench-provision bench-site bench-web ## Benchmarks (all)

bench-roles: ## no-change base+firewall (vs an older revision) and site.yml, beside the ping floor
	tests/harness/bench-roles.sh

bench-inventory: ## hcloud inventory: ours vs hetzner.hcloud vs a static file, 100..10000 servers
	tests/harness/bench-inventory.sh

bench-deploy: ## a deploy under traffic: anvil.hetzner.deploy vs a restart by hand, and the rollback time
	tests/harness/bench-deploy.sh

bench-provision: ## provision.yml 1 vs 10 servers on the sandbox's machines: ratio, no-change run, create -> SSH, slowest tasks
	tests/harness/bench-provision.sh

bench-site: ## site.yml on 1 vs 10 sandbox servers (first and no-change run), the no-change run beside the ping floor
	tests/harness/bench-site.sh

bench-web: ## the no-change site.yml on make demo's web-1 (all seven roles) beside the ping floor
	tests/harness/bench-web.sh

clean: ## Tear down what make demo made (teardown.yml) and remove every generated file
	tests/harness/demo-clean.sh
