//! Allocation and pointer chasing: build and walk many binary trees (the allocator, memory
//! bounds checks and call overhead dominate).

enum Tree {
    Leaf,
    Node(Box<Tree>, Box<Tree>),
}

fn build(depth: u32) -> Tree {
    if depth == 0 {
        Tree::Leaf
    } else {
        Tree::Node(Box::new(build(depth - 1)), Box::new(build(depth - 1)))
    }
}

fn count(tree: &Tree) -> u64 {
    match tree {
        Tree::Leaf => 1,
        Tree::Node(l, r) => 1 + count(l) + count(r),
    }
}

fn main() {
    let max_depth: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(18);
    let long_lived = build(max_depth);
    let mut total = 0u64;
    for depth in (4..=max_depth).step_by(2) {
        let iterations = 1u64 << (max_depth - depth + 4);
        let mut checks = 0;
        for _ in 0..iterations {
            checks += count(&build(depth));
        }
        println!("{iterations} trees of depth {depth}: {checks} nodes");
        total += checks;
    }
    println!("long lived tree: {} nodes; total {total}", count(&long_lived));
}
