"""The checker's own tests: each check's pure logic on good and broken inputs, and the checks
that evaluate Nix run on copies of the repository's files with the defects issue 9 found put
back, to show they catch them."""
