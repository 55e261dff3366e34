//! Synthetic Cortex-M firmware pairs, for tests and benchmarks of the
//! transform: a vector table, functions that call each other with BL and
//! load addresses from literal pools (other functions, RAM variables,
//! constant strings), and a second version in which a function was
//! inserted, a few were edited and a RAM variable added, so nearly every
//! reference after those points changed.

/// Flash base of the synthetic images.
pub const BASE: u32 = 0x0800_0000;
/// RAM base (variables).
pub const RAM: u32 = 0x2000_0000;

/// A deterministic generator (xorshift), so fixtures need no files.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One instruction-level item of a function body.
#[derive(Debug, Clone)]
enum Item {
    /// A 16-bit instruction that is no reference.
    Plain(u16),
    /// BL to function `n`.
    Call(usize),
    /// A literal-pool load of the address of function `n`.
    FuncPtr(usize),
    /// A literal-pool load of the address of RAM variable `n`.
    VarPtr(usize),
    /// A literal-pool load of the address of string `n`.
    StrPtr(usize),
}

/// A program: what both versions are laid out from.
#[derive(Debug, Clone)]
struct Program {
    functions: Vec<Vec<Item>>,
    /// Sizes of the RAM variables.
    vars: Vec<u32>,
    strings: Vec<Vec<u8>>,
}

fn random_function(rng: &mut Rng, functions: usize, vars: usize, strings: usize) -> Vec<Item> {
    let len = 20 + rng.below(180) as usize;
    (0..len)
        .map(|_| match rng.below(100) {
            0..=9 => Item::Call(rng.below(functions as u64) as usize),
            10..=12 => Item::FuncPtr(rng.below(functions as u64) as usize),
            13..=17 => Item::VarPtr(rng.below(vars as u64) as usize),
            18..=19 => Item::StrPtr(rng.below(strings as u64) as usize),
            // Opcodes below 0xE800: 16-bit Thumb instructions.
            _ => Item::Plain(rng.below(0xE800) as u16),
        })
        .collect()
}

impl Program {
    fn random(rng: &mut Rng, functions: usize) -> Program {
        let vars: Vec<u32> = (0..functions / 2)
            .map(|_| 4 * (1 + rng.below(8) as u32))
            .collect();
        let strings: Vec<Vec<u8>> = (0..functions / 4 + 1)
            .map(|i| {
                let len = 8 + rng.below(40) as usize;
                (0..len).map(|k| b'a' + ((i + k) % 26) as u8).collect()
            })
            .collect();
        let bodies = (0..functions)
            .map(|_| random_function(rng, functions, vars.len(), strings.len()))
            .collect();
        Program {
            functions: bodies,
            vars,
            strings,
        }
    }

    /// The image: vector table, functions (each followed by its literal
    /// pool), strings; RAM variables laid out from [`RAM`].
    fn layout(&self) -> Vec<u8> {
        let table = 4 * 48;
        // Pass 1: addresses.
        let mut func_addr = Vec::with_capacity(self.functions.len());
        let mut at = table as u32;
        for f in &self.functions {
            func_addr.push(BASE + at);
            at += code_len(f) + pool_len(f, at);
        }
        let mut str_addr = Vec::new();
        for s in &self.strings {
            str_addr.push(BASE + at);
            at += (s.len() as u32 + 3) & !3;
        }
        let mut var_addr = Vec::new();
        let mut ram = RAM;
        for v in &self.vars {
            var_addr.push(ram);
            ram += v;
        }
        // Pass 2: bytes.
        let mut img = Vec::with_capacity(at as usize);
        img.extend_from_slice(&(RAM + 0x2_0000).to_le_bytes());
        for i in 0..47 {
            let f = func_addr[i % func_addr.len()];
            img.extend_from_slice(&(f | 1).to_le_bytes());
        }
        for (fi, f) in self.functions.iter().enumerate() {
            let start = func_addr[fi];
            let code_end = start + code_len(f);
            let pool_start = (code_end + 3) & !3;
            let mut pool: Vec<u32> = Vec::new();
            for item in f {
                let here = BASE + img.len() as u32;
                match *item {
                    Item::Plain(h) => img.extend_from_slice(&h.to_le_bytes()),
                    Item::Call(n) => img.extend_from_slice(&bl(here, func_addr[n])),
                    Item::FuncPtr(_) | Item::VarPtr(_) | Item::StrPtr(_) => {
                        let value = match *item {
                            Item::FuncPtr(n) => func_addr[n] | 1,
                            Item::VarPtr(n) => var_addr[n],
                            Item::StrPtr(n) => str_addr[n],
                            _ => 0,
                        };
                        // LDR Rt, [PC, #imm8*4] (T1).
                        let slot = pool_start + 4 * pool.len() as u32;
                        let imm = (slot - ((here + 4) & !3)) / 4;
                        img.extend_from_slice(&(0x4800u16 | (imm as u16 & 0xFF)).to_le_bytes());
                        pool.push(value);
                    }
                }
            }
            while (BASE + img.len() as u32) < pool_start {
                img.push(0);
            }
            for v in pool {
                img.extend_from_slice(&v.to_le_bytes());
            }
        }
        for s in &self.strings {
            img.extend_from_slice(s);
            while img.len() % 4 != 0 {
                img.push(0);
            }
        }
        img
    }
}

fn code_len(f: &[Item]) -> u32 {
    f.iter()
        .map(|i| match i {
            Item::Call(_) => 4,
            _ => 2,
        })
        .sum()
}

/// Padding to 4 and the pool words after a function's code at `at`.
fn pool_len(f: &[Item], at: u32) -> u32 {
    let code_end = at + code_len(f);
    let pad = ((code_end + 3) & !3) - code_end;
    let words = f
        .iter()
        .filter(|i| matches!(i, Item::FuncPtr(_) | Item::VarPtr(_) | Item::StrPtr(_)))
        .count() as u32;
    pad + 4 * words
}

/// A Thumb BL at `at` to `target`.
fn bl(at: u32, target: u32) -> [u8; 4] {
    let off = target.wrapping_sub(at + 4) >> 1;
    let s = (off >> 23) & 1;
    let i1 = (off >> 22) & 1;
    let i2 = (off >> 21) & 1;
    let j1 = !(i1 ^ s) & 1;
    let j2 = !(i2 ^ s) & 1;
    let h1 = 0xF000 | (s << 10) | ((off >> 11) & 0x3FF);
    let h2 = 0xD000 | (j1 << 13) | (j2 << 11) | (off & 0x7FF);
    let mut w = [0u8; 4];
    w[..2].copy_from_slice(&(h1 as u16).to_le_bytes());
    w[2..].copy_from_slice(&(h2 as u16).to_le_bytes());
    w
}

/// A firmware pair of about `functions` functions: the old image, and a
/// new one with a function inserted near the start, `edits` functions
/// edited (an instruction changed, one added) and a RAM variable added.
pub fn firmware_pair(functions: usize, edits: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng(seed | 1);
    let functions = functions.max(4);
    let old = Program::random(&mut rng, functions);
    let mut new = old.clone();
    // A new function early on: every later function moves.
    let fresh = random_function(&mut rng, functions, new.vars.len(), new.strings.len());
    let at = 1 + rng.below(functions as u64 / 4) as usize;
    new.functions.insert(at, fresh);
    for item in new.functions.iter_mut().flatten() {
        if let Item::Call(n) | Item::FuncPtr(n) = item {
            if *n >= at {
                *n += 1;
            }
        }
    }
    for _ in 0..edits {
        let f = rng.below(new.functions.len() as u64) as usize;
        let body = &mut new.functions[f];
        let i = rng.below(body.len() as u64) as usize;
        body[i] = Item::Plain(rng.below(0xE800) as u16);
        body.insert(i, Item::Plain(rng.below(0xE800) as u16));
    }
    // A new variable early in RAM: later variables move.
    new.vars.insert(1, 8);
    for item in new.functions.iter_mut().flatten() {
        if let Item::VarPtr(n) = item {
            if *n >= 1 {
                *n += 1;
            }
        }
    }
    (old.layout(), new.layout())
}

/// Load address of the synthetic AArch64 images.
pub const A64_BASE: u32 = 0x40_0000;

/// An AArch64 item: a plain instruction, a call, an address formed with
/// ADRP + ADD or loaded with ADRP + LDR, or a 64-bit pointer in the data.
#[derive(Debug, Clone, Copy)]
enum A64 {
    Plain(u32),
    Call(usize),
    Addr(usize),
    Load(usize),
}

/// An AArch64 firmware pair (a raw image, as `objcopy -O binary` makes):
/// functions calling each other and reaching data objects through ADRP
/// pairs, a table of 64-bit pointers to functions and objects; the new
/// version inserts a function and a data object early and edits a few
/// functions.
pub fn aarch64_pair(functions: usize, edits: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng(seed | 1);
    let functions = functions.max(4);
    let objects = functions / 2 + 1;
    let body = |rng: &mut Rng| -> Vec<A64> {
        let len = 16 + rng.below(120) as usize;
        (0..len)
            .map(|_| match rng.below(100) {
                0..=9 => A64::Call(rng.below(functions as u64) as usize),
                10..=14 => A64::Addr(rng.below(objects as u64) as usize),
                15..=18 => A64::Load(rng.below(objects as u64) as usize),
                // ORR (shifted register): no reference.
                _ => A64::Plain(0xAA00_0000 | (rng.next() as u32 & 0x00FF_FFFF)),
            })
            .collect()
    };
    let mut f_old: Vec<Vec<A64>> = (0..functions).map(|_| body(&mut rng)).collect();
    let mut o_old: Vec<u32> = (0..objects)
        .map(|_| 8 * (1 + rng.below(12) as u32))
        .collect();
    let old = a64_layout(&f_old, &o_old);
    let at = 1 + rng.below(functions as u64 / 4) as usize;
    let fresh = body(&mut rng);
    f_old.insert(at, fresh);
    let renumber = |n: &mut usize, from: usize| {
        if *n >= from {
            *n += 1;
        }
    };
    for item in f_old.iter_mut().flatten() {
        if let A64::Call(n) = item {
            renumber(n, at);
        }
    }
    for _ in 0..edits {
        let f = rng.below(f_old.len() as u64) as usize;
        let b = &mut f_old[f];
        let i = rng.below(b.len() as u64) as usize;
        b.insert(
            i,
            A64::Plain(0xAA00_0000 | (rng.next() as u32 & 0x00FF_FFFF)),
        );
    }
    o_old.insert(1, 24);
    for item in f_old.iter_mut().flatten() {
        if let A64::Addr(n) | A64::Load(n) = item {
            renumber(n, 1);
        }
    }
    let new = a64_layout(&f_old, &o_old);
    (old, new)
}

/// Lays out functions (each ending in RET), then the data objects, then a
/// pointer table.
fn a64_layout(functions: &[Vec<A64>], objects: &[u32]) -> Vec<u8> {
    let words = |f: &[A64]| -> u32 {
        f.iter()
            .map(|i| match i {
                A64::Addr(_) | A64::Load(_) => 2,
                _ => 1,
            })
            .sum::<u32>()
            + 1
    };
    let mut func_addr = Vec::new();
    let mut at = A64_BASE;
    for f in functions {
        func_addr.push(at);
        at += 4 * words(f);
    }
    at = (at + 0xFFF) & !0xFFF;
    let mut obj_addr = Vec::new();
    for o in objects {
        obj_addr.push(at);
        at += o;
    }
    let mut img: Vec<u8> = Vec::new();
    let put = |img: &mut Vec<u8>, w: u32| img.extend_from_slice(&w.to_le_bytes());
    let adrp = |pc: u32, t: u32, rd: u32| {
        let pages = (t >> 12).wrapping_sub(pc >> 12);
        0x9000_0000 | ((pages & 3) << 29) | (((pages >> 2) & 0x7_FFFF) << 5) | rd
    };
    for f in functions {
        for item in f {
            let pc = A64_BASE + img.len() as u32;
            match *item {
                A64::Plain(w) => put(&mut img, w),
                A64::Call(n) => put(
                    &mut img,
                    0x9400_0000 | ((func_addr[n].wrapping_sub(pc) >> 2) & 0x03FF_FFFF),
                ),
                A64::Addr(n) => {
                    put(&mut img, adrp(pc, obj_addr[n], 1));
                    put(
                        &mut img,
                        0x9100_0000 | ((obj_addr[n] & 0xFFF) << 10) | (1 << 5) | 1,
                    );
                }
                A64::Load(n) => {
                    put(&mut img, adrp(pc, obj_addr[n], 2));
                    let lo = (obj_addr[n] & 0xFFF) >> 3;
                    put(&mut img, 0xF940_0000 | (lo << 10) | (2 << 5) | 2);
                }
            }
        }
        put(&mut img, 0xD65F_03C0);
    }
    img.resize((obj_addr[0] - A64_BASE) as usize, 0);
    for (i, o) in objects.iter().enumerate() {
        let fill = (i as u8).wrapping_mul(37);
        img.extend((0..*o).map(|k| fill ^ k as u8));
    }
    for (i, f) in func_addr.iter().enumerate() {
        let target = if i % 3 == 0 {
            obj_addr[i % obj_addr.len()]
        } else {
            *f
        };
        img.extend_from_slice(&u64::from(target).to_le_bytes());
    }
    img
}

/// An x86-64 firmware pair (a raw image): functions of plain one-byte
/// instructions, CALL rel32 between them, and RIP-relative LEA and MOV of
/// data objects; then the objects and a table of 64-bit pointers. The new
/// version inserts a function and an object early and edits a few
/// functions.
pub fn x86_64_pair(functions: usize, edits: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    // The items are AArch64's, laid out as x86-64 code.
    let mut rng = Rng(seed | 1);
    let functions = functions.max(4);
    let objects = functions / 2 + 1;
    // PUSH/POP/NOP/RET-free one-byte instructions, none a site's opcode.
    const PLAIN: [u8; 8] = [0x90, 0x50, 0x51, 0x52, 0x58, 0x59, 0x5A, 0x99];
    let body = |rng: &mut Rng| -> Vec<A64> {
        let len = 16 + rng.below(120) as usize;
        (0..len)
            .map(|_| match rng.below(100) {
                0..=9 => A64::Call(rng.below(functions as u64) as usize),
                10..=14 => A64::Addr(rng.below(objects as u64) as usize),
                15..=18 => A64::Load(rng.below(objects as u64) as usize),
                _ => A64::Plain(u32::from(PLAIN[rng.below(8) as usize])),
            })
            .collect()
    };
    let mut funcs: Vec<Vec<A64>> = (0..functions).map(|_| body(&mut rng)).collect();
    let mut objs: Vec<u32> = (0..objects)
        .map(|_| 8 * (1 + rng.below(12) as u32))
        .collect();
    let old = x86_layout(&funcs, &objs);
    let at = 1 + rng.below(functions as u64 / 4) as usize;
    let fresh = body(&mut rng);
    funcs.insert(at, fresh);
    for item in funcs.iter_mut().flatten() {
        if let A64::Call(n) = item {
            if *n >= at {
                *n += 1;
            }
        }
    }
    for _ in 0..edits {
        let f = rng.below(funcs.len() as u64) as usize;
        let b = &mut funcs[f];
        let i = rng.below(b.len() as u64) as usize;
        b.insert(i, A64::Plain(u32::from(PLAIN[rng.below(8) as usize])));
    }
    objs.insert(1, 24);
    for item in funcs.iter_mut().flatten() {
        if let A64::Addr(n) | A64::Load(n) = item {
            if *n >= 1 {
                *n += 1;
            }
        }
    }
    (old, x86_layout(&funcs, &objs))
}

fn x86_layout(functions: &[Vec<A64>], objects: &[u32]) -> Vec<u8> {
    let len = |f: &[A64]| -> u32 {
        f.iter()
            .map(|i| match i {
                A64::Plain(_) => 1,
                A64::Call(_) => 5,
                A64::Addr(_) | A64::Load(_) => 7,
            })
            .sum::<u32>()
            + 1
    };
    let mut func_addr = Vec::new();
    let mut at = A64_BASE;
    for f in functions {
        func_addr.push(at);
        at += len(f);
    }
    at = (at + 0xFFF) & !0xFFF;
    let mut obj_addr = Vec::new();
    for o in objects {
        obj_addr.push(at);
        at += o;
    }
    let mut img: Vec<u8> = Vec::new();
    for f in functions {
        for item in f {
            let pc = A64_BASE + img.len() as u32;
            match *item {
                A64::Plain(b) => img.push(b as u8),
                A64::Call(n) => {
                    img.push(0xE8);
                    img.extend_from_slice(&func_addr[n].wrapping_sub(pc + 5).to_le_bytes());
                }
                A64::Addr(n) | A64::Load(n) => {
                    // LEA RAX, [RIP + d] or MOV RAX, [RIP + d].
                    let op = if matches!(item, A64::Addr(_)) {
                        0x8D
                    } else {
                        0x8B
                    };
                    img.extend_from_slice(&[0x48, op, 0x05]);
                    img.extend_from_slice(&obj_addr[n].wrapping_sub(pc + 7).to_le_bytes());
                }
            }
        }
        img.push(0xC3);
    }
    img.resize((obj_addr[0] - A64_BASE) as usize, 0xCC);
    for (i, o) in objects.iter().enumerate() {
        let fill = (i as u8).wrapping_mul(37);
        img.extend((0..*o).map(|k| fill ^ k as u8));
    }
    for (i, f) in func_addr.iter().enumerate() {
        let target = if i % 3 == 0 {
            obj_addr[i % obj_addr.len()]
        } else {
            *f
        };
        img.extend_from_slice(&u64::from(target).to_le_bytes());
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_look_like_cortex_m_images() {
        let (old, new) = firmware_pair(60, 3, 7);
        assert_ne!(old, new);
        for img in [&old, &new] {
            let l = super::super::layout::detect(img, super::super::Arch::Auto).expect("layout");
            assert_eq!(l.ranges[0].address, BASE);
        }
        assert_eq!(firmware_pair(60, 3, 7), (old, new));
    }

    #[test]
    fn aarch64_pairs_are_detected_with_their_base() {
        let (old, new) = aarch64_pair(300, 3, 9);
        assert_ne!(old, new);
        for img in [&old, &new] {
            let l = super::super::layout::detect(img, super::super::Arch::Auto).expect("layout");
            assert_eq!(l.isa, fota_format::xform::Isa::Aarch64);
            assert_eq!(l.ranges[0].address, A64_BASE);
        }
    }
}
