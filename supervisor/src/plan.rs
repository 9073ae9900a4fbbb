//! The dependency graph of services, compiled before anything starts (as s6-rc does): stable
//! start order, reverse stop order, direct dependencies and transitive dependents. Pure: no
//! I/O, no processes. Services are addressed by their index in the slice given to
//! [`Plan::new`], and by name.

use std::collections::{BTreeSet, HashMap};

use crate::service::ServiceSpec;

/// One problem in the dependency graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("service name {name:?} is used more than once")]
    DuplicateName { name: String },
    #[error("service {service:?} lists {target:?} in `after`, but there is no such service")]
    UnknownAfter { service: String, target: String },
    /// `cycle` starts and ends with the same service: `a -> b -> a`.
    #[error("dependency cycle: {}", .cycle.join(" -> "))]
    Cycle { cycle: Vec<String> },
}

/// Every problem found, in a stable order (duplicates, unknown targets, cycles).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct PlanErrors {
    pub errors: Vec<PlanError>,
}

/// The validated graph.
#[derive(Debug, Clone)]
pub struct Plan {
    names: Vec<String>,
    /// `deps[i]`: indices of the services `i` lists in `after` (deduplicated, in list order).
    deps: Vec<Vec<usize>>,
    /// `dependents[i]`: indices of the services that list `i` in `after` directly.
    dependents: Vec<Vec<usize>>,
    /// Start order: every service after all its dependencies; ties keep input order.
    order: Vec<usize>,
}

impl Plan {
    /// Builds the graph, collecting every error.
    pub fn new(specs: &[ServiceSpec]) -> Result<Plan, PlanErrors> {
        let mut errors = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, spec) in specs.iter().enumerate() {
            if index.contains_key(spec.name.as_str()) {
                let dup = PlanError::DuplicateName {
                    name: spec.name.clone(),
                };
                if !errors.contains(&dup) {
                    errors.push(dup);
                }
            } else {
                index.insert(spec.name.as_str(), i);
            }
        }

        let n = specs.len();
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, spec) in specs.iter().enumerate() {
            for target in &spec.after {
                match index.get(target.as_str()) {
                    Some(&j) => {
                        if !deps[i].contains(&j) {
                            deps[i].push(j);
                            dependents[j].push(i);
                        }
                    }
                    None => errors.push(PlanError::UnknownAfter {
                        service: spec.name.clone(),
                        target: target.clone(),
                    }),
                }
            }
        }

        let order = topological_order(&deps, &dependents);
        if order.len() < n {
            let placed: BTreeSet<usize> = order.iter().copied().collect();
            for cycle in find_cycles(&deps, &placed) {
                let mut names: Vec<String> = cycle.iter().map(|&i| specs[i].name.clone()).collect();
                names.push(specs[cycle[0]].name.clone());
                errors.push(PlanError::Cycle { cycle: names });
            }
        }

        if !errors.is_empty() {
            return Err(PlanErrors { errors });
        }
        Ok(Plan {
            names: specs.iter().map(|s| s.name.clone()).collect(),
            deps,
            dependents,
            order,
        })
    }

    /// Number of services.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of service `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// The index of the service called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Start order (indices): every service comes after all of its `after` targets; services
    /// that do not depend on each other keep their input order.
    pub fn start_order(&self) -> &[usize] {
        &self.order
    }

    /// Stop order (indices): the reverse of the start order, so dependents stop first.
    pub fn stop_order(&self) -> impl Iterator<Item = usize> + '_ {
        self.order.iter().rev().copied()
    }

    /// Start order by name.
    pub fn start_order_names(&self) -> Vec<&str> {
        self.order.iter().map(|&i| self.name(i)).collect()
    }

    /// Stop order by name.
    pub fn stop_order_names(&self) -> Vec<&str> {
        self.stop_order().map(|i| self.name(i)).collect()
    }

    /// Direct dependencies of service `i` (its `after` list).
    pub fn deps(&self, i: usize) -> &[usize] {
        &self.deps[i]
    }

    /// Services that list `i` in `after` directly.
    pub fn direct_dependents(&self, i: usize) -> &[usize] {
        &self.dependents[i]
    }

    /// Every service that depends on `i` directly or transitively, in start order
    /// (`i` itself excluded).
    pub fn dependents(&self, i: usize) -> Vec<usize> {
        let mut seen = vec![false; self.len()];
        let mut stack = vec![i];
        while let Some(j) = stack.pop() {
            for &d in &self.dependents[j] {
                if !seen[d] {
                    seen[d] = true;
                    stack.push(d);
                }
            }
        }
        self.order.iter().copied().filter(|&j| seen[j]).collect()
    }

    /// Transitive dependents of the service called `name`, by name, in start order.
    pub fn dependents_of(&self, name: &str) -> Vec<&str> {
        match self.index_of(name) {
            Some(i) => self
                .dependents(i)
                .into_iter()
                .map(|j| self.name(j))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Longest chain of dependencies below each service (0: depends on nothing), by index.
    /// Services of equal depth may start in parallel; `deskd check` prints it.
    pub fn depths(&self) -> Vec<usize> {
        let mut depth = vec![0; self.len()];
        for &i in &self.order {
            depth[i] = self.deps[i]
                .iter()
                .map(|&d| depth[d] + 1)
                .max()
                .unwrap_or(0);
        }
        depth
    }
}

/// Kahn's algorithm, always taking the lowest ready index so the order is stable. Services
/// on or behind a cycle are left out.
fn topological_order(deps: &[Vec<usize>], dependents: &[Vec<usize>]) -> Vec<usize> {
    let mut missing: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut ready: BTreeSet<usize> = (0..deps.len()).filter(|&i| missing[i] == 0).collect();
    let mut order = Vec::with_capacity(deps.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &d in &dependents[i] {
            missing[d] -= 1;
            if missing[d] == 0 {
                ready.insert(d);
            }
        }
    }
    order
}

/// The distinct cycles among the services Kahn's algorithm could not place. Every such
/// service has a dependency that is also unplaced, so following dependencies always ends in
/// a cycle. Each cycle is rotated to start at its lowest index.
fn find_cycles(deps: &[Vec<usize>], placed: &BTreeSet<usize>) -> Vec<Vec<usize>> {
    let mut cycles: Vec<Vec<usize>> = Vec::new();
    for start in (0..deps.len()).filter(|i| !placed.contains(i)) {
        let mut path = vec![start];
        let mut cur = start;
        // The `while let` ending without a cycle cannot happen (see above); it stops
        // rather than loops.
        while let Some(&next) = deps[cur].iter().find(|d| !placed.contains(d)) {
            if let Some(pos) = path.iter().position(|&p| p == next) {
                let mut cycle = path[pos..].to_vec();
                let min_pos = cycle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, &v)| v)
                    .map(|(p, _)| p)
                    .unwrap_or(0);
                cycle.rotate_left(min_pos);
                if !cycles.contains(&cycle) {
                    cycles.push(cycle);
                }
                break;
            }
            path.push(next);
            cur = next;
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, after: &[&str]) -> ServiceSpec {
        let mut s = ServiceSpec::new(name, vec!["true".to_string()]);
        s.after = after.iter().map(|a| a.to_string()).collect();
        s
    }

    #[test]
    fn start_order_respects_after_and_keeps_input_order() {
        let specs = vec![
            spec("app", &["neko", "display"]),
            spec("display", &[]),
            spec("neko", &["display"]),
            spec("audio", &[]),
        ];
        let plan = Plan::new(&specs).unwrap();
        assert_eq!(
            plan.start_order_names(),
            ["display", "neko", "app", "audio"]
        );
        assert_eq!(plan.stop_order_names(), ["audio", "app", "neko", "display"]);
        assert_eq!(plan.depths(), vec![2, 0, 1, 0]);
    }

    #[test]
    fn independent_services_keep_file_order() {
        let specs = vec![spec("c", &[]), spec("a", &[]), spec("b", &[])];
        let plan = Plan::new(&specs).unwrap();
        assert_eq!(plan.start_order_names(), ["c", "a", "b"]);
    }

    #[test]
    fn dependents_are_transitive_and_in_start_order() {
        let specs = vec![
            spec("display", &[]),
            spec("neko", &["display"]),
            spec("relay", &["neko"]),
            spec("other", &[]),
            spec("wm", &["display"]),
        ];
        let plan = Plan::new(&specs).unwrap();
        assert_eq!(plan.dependents_of("display"), ["neko", "relay", "wm"]);
        assert_eq!(plan.dependents_of("neko"), ["relay"]);
        assert!(plan.dependents_of("other").is_empty());
        assert_eq!(plan.deps(2), &[1]);
        assert_eq!(plan.direct_dependents(0), &[1, 4]);
    }

    #[test]
    fn cycle_is_named() {
        let specs = vec![
            spec("a", &["c"]),
            spec("b", &["a"]),
            spec("c", &["b"]),
            spec("d", &["a"]),
        ];
        let err = Plan::new(&specs).unwrap_err();
        assert_eq!(
            err.errors,
            vec![PlanError::Cycle {
                cycle: vec!["a".into(), "c".into(), "b".into(), "a".into()]
            }]
        );
        assert_eq!(err.to_string(), "dependency cycle: a -> c -> b -> a");
    }

    #[test]
    fn self_dependency_is_a_cycle() {
        let err = Plan::new(&[spec("a", &["a"])]).unwrap_err();
        assert_eq!(err.to_string(), "dependency cycle: a -> a");
    }

    #[test]
    fn two_separate_cycles_are_both_reported() {
        let specs = vec![
            spec("a", &["b"]),
            spec("b", &["a"]),
            spec("x", &["y"]),
            spec("y", &["x"]),
        ];
        let err = Plan::new(&specs).unwrap_err();
        assert_eq!(err.errors.len(), 2, "{err}");
    }

    #[test]
    fn unknown_after_and_duplicates_are_all_collected() {
        let specs = vec![
            spec("a", &["nope"]),
            spec("a", &[]),
            spec("b", &["a", "ghost"]),
        ];
        let err = Plan::new(&specs).unwrap_err();
        assert_eq!(
            err.errors,
            vec![
                PlanError::DuplicateName { name: "a".into() },
                PlanError::UnknownAfter {
                    service: "a".into(),
                    target: "nope".into()
                },
                PlanError::UnknownAfter {
                    service: "b".into(),
                    target: "ghost".into()
                },
            ]
        );
    }

    #[test]
    fn repeated_after_entries_count_once() {
        let specs = vec![spec("a", &[]), spec("b", &["a", "a"])];
        let plan = Plan::new(&specs).unwrap();
        assert_eq!(plan.deps(1), &[0]);
        assert_eq!(plan.direct_dependents(0), &[1]);
    }

    #[test]
    fn empty_plan() {
        let plan = Plan::new(&[]).unwrap();
        assert!(plan.is_empty());
        assert!(plan.start_order().is_empty());
    }
}
