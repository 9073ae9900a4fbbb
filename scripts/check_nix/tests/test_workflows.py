import copy
import unittest

import yaml

from check_nix.checks import workflows
from check_nix.tests.support import ROOT


class NixWorkflowTest(unittest.TestCase):
    def setUp(self):
        self.doc = yaml.safe_load((ROOT / ".github/workflows/nix.yml").read_text())

    def steps(self, doc):
        return next(iter(doc["jobs"].values()))["steps"]

    def test_the_repository_workflow_is_complete(self):
        self.assertEqual(workflows.nix_problems(self.doc), [])
        self.assertEqual(workflows.pinned_problems("nix.yml", self.doc), [])
        self.assertEqual(workflows.bash_problems("nix.yml", self.doc), [])

    def test_a_branch_filter_is_caught(self):
        doc = copy.deepcopy(self.doc)
        doc[True if True in doc else "on"]["push"] = {"branches": ["main"]}
        self.assertTrue(any("filtered" in p for p in workflows.nix_problems(doc)))

    def test_a_missing_docker_stop_is_caught(self):
        doc = copy.deepcopy(self.doc)
        job = next(iter(doc["jobs"].values()))
        job["steps"] = [s for s in job["steps"] if "docker stop" not in str(s.get("run", ""))]
        self.assertTrue(any("docker stop" in p for p in workflows.nix_problems(doc)))

    def test_steps_out_of_order_are_caught(self):
        doc = copy.deepcopy(self.doc)
        job = next(iter(doc["jobs"].values()))
        check = next(s for s in job["steps"] if "nix flake check" in str(s.get("run", "")))
        job["steps"].remove(check)
        job["steps"].append(check)
        self.assertTrue(any("(in order)" in p for p in workflows.nix_problems(doc)))

    def test_an_unpinned_action_and_bad_bash_are_caught(self):
        doc = {"jobs": {"j": {"steps": [{"uses": "cachix/install-nix-action@master"}, {"run": "if then fi ${{ x }}"}]}}}
        self.assertEqual(len(workflows.pinned_problems("w", doc)), 1)
        self.assertEqual(len(workflows.bash_problems("w", doc)), 1)


if __name__ == "__main__":
    unittest.main()
