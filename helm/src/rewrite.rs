//! A pass over each parsed template tree, between gotmpl's parser and the template set.
//!
//! gotmpl has no Go methods (a `.Foo` is always a map lookup) and its run-time errors carry
//! no position. Helm's objects need a few methods (`.Files.Get`, `.Files.Glob`,
//! `.Capabilities.APIVersions.Has`, ...), and `required`/`fail` must say where they failed.
//! So this pass:
//! - turns a field chain that names one of those methods into a call of the internal
//!   function `__method` (receiver, method name, arguments); `__method` calls the method
//!   when the receiver is an object that has it, and otherwise reads the field as Go would;
//! - gives `required` and `fail` the call's position (`__required`, `__fail`);
//! - refuses a call of a function that does not exist, with its position, as Go's parser does.

use std::collections::BTreeSet;

use gotmpl::parse::{CommandNode, Expr, ListNode, Node, PipeNode, Pos, SmolStr};

/// Method names of Helm's built-in objects.
pub const METHODS: &[&str] = &[
    "Get",
    "GetBytes",
    "Glob",
    "Lines",
    "AsConfig",
    "AsSecrets",
    "Has",
];

pub struct Rewriter<'a> {
    pub name: &'a str,
    pub src: &'a str,
    pub funcs: &'a BTreeSet<String>,
    pub error: Option<String>,
}

impl Rewriter<'_> {
    fn position(&self, pos: Pos) -> String {
        let end = pos.offset.min(self.src.len());
        let line_start = self.src[..end].rfind('\n').map_or(0, |i| i + 1);
        let col = self.src[line_start..end].chars().count() + 1;
        format!("{}:{}:{}", self.name, pos.line, col)
    }

    pub fn list(&mut self, list: &mut ListNode) {
        for node in &mut list.nodes {
            self.node(node);
        }
    }

    fn node(&mut self, node: &mut Node) {
        match node {
            Node::List(l) => self.list(l),
            Node::Action(a) => self.pipe(&mut a.pipe),
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                self.pipe(&mut b.pipe);
                self.list(&mut b.body);
                if let Some(e) = &mut b.else_body {
                    self.list(e);
                }
            }
            Node::Template(t) => {
                if let Some(p) = &mut t.pipe {
                    self.pipe(p);
                }
            }
            Node::Define(d) => self.list(&mut d.body),
            Node::Text(_) | Node::Break(_) | Node::Continue(_) => {}
        }
    }

    fn pipe(&mut self, pipe: &mut PipeNode) {
        for cmd in &mut pipe.commands {
            self.command(cmd);
        }
    }

    fn command(&mut self, cmd: &mut CommandNode) {
        // Arguments first (they may hold sub-pipelines and method chains).
        for arg in cmd.args.iter_mut().skip(1) {
            self.expr(arg);
        }
        let Some(head) = cmd.args.first_mut() else {
            return;
        };
        match head {
            Expr::Identifier(pos, name) => {
                let pos = *pos;
                if name == "required" || name == "fail" {
                    let at = self.position(pos);
                    *name = SmolStr::new(format!("__{name}"));
                    cmd.args.insert(1, Expr::String(pos, at.into()));
                } else if !self.funcs.contains(name.as_str()) && self.error.is_none() {
                    self.error = Some(format!(
                        "template: {}: function {:?} not defined",
                        self.position(pos),
                        name.as_str()
                    ));
                }
            }
            _ => {
                // A method at the end of the head's chain takes the command's arguments.
                if let Some((receiver, method, rest)) = split_method(head) {
                    if rest.is_empty() {
                        let pos = head.pos();
                        let mut args = vec![
                            Expr::Identifier(pos, "__method".into()),
                            receiver,
                            Expr::String(pos, method.as_str().into()),
                        ];
                        args.extend(cmd.args.drain(1..));
                        cmd.args = args;
                        // The receiver may itself hold methods.
                        self.expr(&mut cmd.args[1]);
                        return;
                    }
                }
                self.expr(head);
            }
        }
    }

    /// Rewrite an expression used as a value: a method in its chain is called without
    /// arguments (Go calls a niladic method met in a chain).
    fn expr(&mut self, e: &mut Expr) {
        match e {
            Expr::Pipe(_, p) => self.pipe(p),
            Expr::Chain(_, inner, _) => self.expr(inner),
            Expr::Identifier(pos, name)
                if !self.funcs.contains(name.as_str()) && self.error.is_none() =>
            {
                self.error = Some(format!(
                    "template: {}: function {:?} not defined",
                    self.position(*pos),
                    name.as_str()
                ));
            }
            _ => {}
        }
        if let Some((mut receiver, method, rest)) = split_method(e) {
            self.expr(&mut receiver);
            let pos = e.pos();
            let call = Expr::Pipe(
                pos,
                PipeNode {
                    pos,
                    decl: Vec::new(),
                    commands: vec![CommandNode {
                        pos,
                        args: vec![
                            Expr::Identifier(pos, "__method".into()),
                            receiver,
                            Expr::String(pos, method.as_str().into()),
                        ],
                    }],
                    is_assign: false,
                },
            );
            *e = if rest.is_empty() {
                call
            } else {
                Expr::Chain(pos, Box::new(call), rest)
            };
            // The remaining chain may name another method.
            self.expr(e);
        }
    }
}

/// Split `recv.A.Method.B` at the first method name: (recv.A, Method, [B]).
fn split_method(e: &Expr) -> Option<(Expr, SmolStr, Vec<SmolStr>)> {
    let fields = match e {
        Expr::Field(_, f) | Expr::Variable(_, _, f) | Expr::Chain(_, _, f) => f,
        _ => return None,
    };
    let j = fields.iter().position(|f| METHODS.contains(&f.as_str()))?;
    let before = fields[..j].to_vec();
    let method = fields[j].clone();
    let rest = fields[j + 1..].to_vec();
    let receiver = match e {
        Expr::Field(p, _) => {
            if before.is_empty() {
                Expr::Dot(*p)
            } else {
                Expr::Field(*p, before)
            }
        }
        Expr::Variable(p, name, _) => Expr::Variable(*p, name.clone(), before),
        Expr::Chain(p, inner, _) => {
            if before.is_empty() {
                (**inner).clone()
            } else {
                Expr::Chain(*p, inner.clone(), before)
            }
        }
        _ => return None,
    };
    Some((receiver, method, rest))
}
