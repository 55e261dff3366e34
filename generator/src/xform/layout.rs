//! Where an image sits in memory and which instruction set it holds: from
//! an ELF file's section table, for a raw Cortex-M image from its vector
//! table, and for other raw images from their bytes (module `xform::raw`).

use fota_format::xform::{
    AddrRange, Isa, Window, FLAG_BRANCHES, FLAG_POINTERS, MAX_RANGES, MAX_WINDOWS,
};
use goblin::elf::{header, section_header, sym, Elf};

use super::raw;

/// Which instruction set to transform for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arch {
    /// Detect: ELF header and symbols, a Cortex-M vector table, or AArch64,
    /// A32 or x86-64 code in a raw image.
    #[default]
    Auto,
    /// No reference transform.
    None,
    /// Thumb-2 (Cortex-M, and Thumb code of A/R cores).
    Thumb,
    /// AArch64.
    Aarch64,
    /// x86-64.
    X86_64,
    /// A32 (ARM mode of ARMv7-A and AArch32).
    Arm,
}

/// An image's memory layout as the transform needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The instruction set.
    pub isa: Isa,
    /// Which image bytes sit at which address, sorted by offset, disjoint.
    pub ranges: Vec<AddrRange>,
    /// Addresses a pointer word of this image may hold (its loaded
    /// sections or flash, and RAM).
    pub windows: Vec<Window>,
    /// Bytes from the lowest to the highest loaded address: how far a
    /// branch may reach.
    pub span: u64,
    /// How the layout was found, for reports.
    pub source: &'static str,
}

/// The layout of `image` for `arch`, if one can be found: ELF files by
/// their section table, raw images by a Cortex-M vector table at offset 0
/// or by their code (module `xform::raw`).
pub fn detect(image: &[u8], arch: Arch) -> Option<Layout> {
    if arch == Arch::None {
        return None;
    }
    if image.starts_with(b"\x7fELF") {
        return elf_layout(image, arch);
    }
    match arch {
        Arch::Aarch64 => Some(raw::layout(image, Isa::Aarch64)),
        Arch::X86_64 => Some(raw::layout(image, Isa::X86_64)),
        Arch::Arm => Some(raw::layout(image, Isa::Arm)),
        Arch::Auto if raw::looks_like(image, Isa::Aarch64) => {
            Some(raw::layout(image, Isa::Aarch64))
        }
        Arch::Auto if raw::looks_like(image, Isa::Arm) => Some(raw::layout(image, Isa::Arm)),
        Arch::Auto => cortex_m_layout(image).or_else(|| {
            raw::looks_like(image, Isa::X86_64).then(|| raw::layout(image, Isa::X86_64))
        }),
        _ => cortex_m_layout(image),
    }
}

/// Thumb code in an ARM ELF file: ranges from the loaded sections with
/// contents, windows from every loaded section (`.bss` included).
fn elf_layout(image: &[u8], arch: Arch) -> Option<Layout> {
    let elf = Elf::parse(image).ok()?;
    if !elf.little_endian {
        return None;
    }
    let isa = match (elf.header.e_machine, elf.is_64) {
        (header::EM_AARCH64, true) if matches!(arch, Arch::Auto | Arch::Aarch64) => Isa::Aarch64,
        (header::EM_X86_64, true) if matches!(arch, Arch::Auto | Arch::X86_64) => Isa::X86_64,
        (header::EM_ARM, false) if arch == Arch::Arm => Isa::Arm,
        (header::EM_ARM, false) if matches!(arch, Arch::Auto | Arch::Thumb) => Isa::Thumb2,
        _ => return None,
    };
    // Thumb functions have odd symbol values; an executable's entry too.
    let funcs = elf
        .syms
        .iter()
        .chain(elf.dynsyms.iter())
        .filter(|s| s.st_type() == sym::STT_FUNC && s.st_value != 0);
    let (odd, even) = funcs.fold((0usize, 0usize), |(o, e), s| {
        if s.st_value & 1 == 1 {
            (o + 1, e)
        } else {
            (o, e + 1)
        }
    });
    let thumb = odd > even || (odd + even == 0 && elf.entry & 1 == 1);
    // ARM-mode code (A32) unless its functions say Thumb.
    let isa = match isa {
        Isa::Thumb2 if !thumb && arch != Arch::Thumb => Isa::Arm,
        isa => isa,
    };
    let mut ranges = Vec::new();
    let mut spans = Vec::new();
    for sh in &elf.section_headers {
        let alloc = sh.sh_flags & u64::from(section_header::SHF_ALLOC) != 0;
        if !alloc || sh.sh_size == 0 || sh.sh_addr + sh.sh_size > 1 << 32 {
            continue;
        }
        spans.push((sh.sh_addr, sh.sh_addr + sh.sh_size));
        if sh.sh_type == section_header::SHT_NOBITS
            || sh.sh_offset + sh.sh_size > image.len() as u64
        {
            continue;
        }
        // Code is scanned for branches (and its literal pools for
        // pointers), everything else for pointers only.
        let code = sh.sh_flags & u64::from(section_header::SHF_EXECINSTR) != 0;
        ranges.push(AddrRange {
            offset: u32::try_from(sh.sh_offset).ok()?,
            len: u32::try_from(sh.sh_size).ok()?,
            address: sh.sh_addr as u32,
            flags: if code {
                FLAG_BRANCHES | FLAG_POINTERS
            } else {
                FLAG_POINTERS
            },
        });
    }
    if ranges.is_empty() {
        return None;
    }
    let lowest = ranges
        .iter()
        .map(|r| u64::from(r.address))
        .min()
        .unwrap_or(0);
    let highest = ranges
        .iter()
        .map(|r| u64::from(r.address) + u64::from(r.len))
        .max()
        .unwrap_or(0);
    // Symbol tables hold addresses too (st_value, 4-aligned in 16-byte
    // entries, or 8-aligned in 24-byte ones): T maps them like pointer
    // words. They are not loaded, so
    // they get addresses of their own above everything loaded.
    let mut next = spans
        .iter()
        .map(|s| s.1)
        .max()
        .unwrap_or(0)
        .next_multiple_of(1 << 20);
    for sh in &elf.section_headers {
        let symbols = sh.sh_type == section_header::SHT_SYMTAB;
        let alloc = sh.sh_flags & u64::from(section_header::SHF_ALLOC) != 0;
        if !symbols || alloc || sh.sh_size == 0 || sh.sh_offset + sh.sh_size > image.len() as u64 {
            continue;
        }
        if next + sh.sh_size > 1 << 32 {
            break;
        }
        ranges.push(AddrRange {
            offset: u32::try_from(sh.sh_offset).ok()?,
            len: u32::try_from(sh.sh_size).ok()?,
            address: next as u32,
            flags: FLAG_POINTERS,
        });
        next = (next + sh.sh_size).next_multiple_of(1 << 20);
    }
    let ranges = fit_ranges(ranges);
    Some(Layout {
        isa,
        ranges,
        windows: fit_windows(spans),
        span: highest - lowest,
        source: "elf",
    })
}

/// Sorts ranges, joins neighbours of one kind that continue each other in
/// the file and in memory, drops overlaps, and keeps the largest
/// [`MAX_RANGES`].
fn fit_ranges(mut ranges: Vec<AddrRange>) -> Vec<AddrRange> {
    ranges.sort_by_key(|r| r.offset);
    let mut out: Vec<AddrRange> = Vec::new();
    for r in ranges {
        match out.last_mut() {
            Some(l)
                if l.offset + l.len == r.offset
                    && l.address.wrapping_add(l.len) == r.address
                    && l.flags == r.flags =>
            {
                l.len += r.len;
            }
            Some(l) if l.offset + l.len > r.offset => {}
            _ => out.push(r),
        }
    }
    if out.len() > MAX_RANGES {
        out.sort_by_key(|r| std::cmp::Reverse(r.len));
        out.truncate(MAX_RANGES);
        out.sort_by_key(|r| r.offset);
    }
    out
}

/// Address spans merged into at most [`MAX_WINDOWS`] windows, joining the
/// closest neighbours first.
fn fit_windows(mut spans: Vec<(u64, u64)>) -> Vec<Window> {
    spans.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, e) in spans {
        match out.last_mut() {
            Some(l) if s <= l.1 + (64 << 10) => l.1 = l.1.max(e),
            _ => out.push((s, e)),
        }
    }
    while out.len() > MAX_WINDOWS {
        let i = (0..out.len() - 1)
            .min_by_key(|&i| out[i + 1].0 - out[i].1)
            .unwrap_or(0);
        out[i].1 = out[i + 1].1;
        out.remove(i + 1);
    }
    out.into_iter()
        .map(|(s, e)| Window {
            low: s as u32,
            high: e.min(u64::from(u32::MAX)) as u32,
        })
        .collect()
}

/// A raw Cortex-M image: word 0 is the initial stack pointer (in RAM),
/// then a table of handler addresses (odd: Thumb) or zeros. The image
/// base is the highest address, aligned as the vector table must be, that
/// puts the table before every handler.
fn cortex_m_layout(image: &[u8]) -> Option<Layout> {
    let word = |i: usize| -> Option<u32> {
        let b = image.get(i * 4..i * 4 + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let len = u32::try_from(image.len()).ok()?;
    let (sp, reset) = (word(0)?, word(1)?);
    if sp & 3 != 0 || sp == 0 || reset & 1 == 0 {
        return None;
    }
    let near = |w: u32| w & 1 == 1 && w.abs_diff(reset) < len;
    // Entries after the stack pointer: handlers or zeros (reserved), at
    // most 16 system and 496 external ones; trailing zeros are not table.
    let mut entries = 1usize;
    while entries < 512 {
        match word(entries + 1) {
            Some(w) if w == 0 || near(w) => entries += 1,
            _ => break,
        }
    }
    while entries > 1 && word(entries) == Some(0) {
        entries -= 1;
    }
    // The 16 architectural entries at least (SP, reset, ..., SysTick).
    if entries < 16 {
        return None;
    }
    let table = ((entries + 1) * 4) as u32;
    let handlers: Vec<u32> = (1..=entries)
        .filter_map(word)
        .filter(|&w| w != 0)
        .map(|w| w & !1)
        .collect();
    let lowest = *handlers.iter().min()?;
    let align = table.next_power_of_two().max(128);
    let base = lowest.checked_sub(table)? / align * align;
    let end = base.checked_add(len)?;
    if handlers.iter().any(|&h| h >= end) || sp >= base && sp < end {
        return None;
    }
    // RAM: from the stack's 16 MiB region up to the initial stack pointer.
    let ram = Window {
        low: sp & 0xFF00_0000,
        high: sp,
    };
    let flash = Window {
        low: base,
        high: end,
    };
    let mut windows = vec![flash];
    if ram.low < ram.high {
        windows.push(ram);
        windows.sort_by_key(|w| w.low);
    }
    Some(Layout {
        isa: Isa::Thumb2,
        ranges: vec![AddrRange {
            offset: 0,
            len,
            address: base,
            flags: FLAG_BRANCHES | FLAG_POINTERS,
        }],
        windows,
        span: len.into(),
        source: "cortex-m vector table",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector_image(base: u32, handlers: &[u32], len: usize) -> Vec<u8> {
        let mut img = vec![0u8; len];
        img[..4].copy_from_slice(&0x2004_0000u32.to_le_bytes());
        for (i, h) in handlers.iter().enumerate() {
            img[4 + i * 4..8 + i * 4].copy_from_slice(&(base + h).to_le_bytes());
        }
        img
    }

    #[test]
    fn cortex_m_base_comes_from_the_vector_table() {
        // 47 handlers after the stack pointer, the first at 0x1A5 (after
        // the 0xC0-byte table), others further up.
        let mut handlers = vec![0x1A5u32; 47];
        handlers[3] = 0x401;
        for base in [0x0800_0000u32, 0x0801_0000, 0] {
            let img = vector_image(base, &handlers, 64 << 10);
            let l = detect(&img, Arch::Auto).expect("cortex-m");
            assert_eq!(l.ranges[0].address, base, "{base:#x}");
            assert_eq!(l.windows.len(), 2);
            assert!(l.windows.iter().any(|w| w.high == 0x2004_0000));
        }
    }

    #[test]
    fn not_a_vector_table_is_no_layout() {
        assert_eq!(detect(&[0u8; 4096], Arch::Auto), None);
        let img: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(detect(&img, Arch::Auto), None);
        // Too few entries.
        let img = vector_image(0x0800_0000, &[0x41; 4], 4096);
        let mut img = img;
        img[20..24].copy_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
        assert_eq!(detect(&img, Arch::Auto), None);
        // Switched off.
        let img = vector_image(0x0800_0000, &[0x1A5; 47], 4096);
        assert!(detect(&img, Arch::Auto).is_some());
        assert_eq!(detect(&img, Arch::None), None);
    }

    #[test]
    fn windows_merge_to_the_limit() {
        let spans = (0..10u64).map(|i| (i << 24, (i << 24) + 10)).collect();
        let w = fit_windows(spans);
        assert_eq!(w.len(), MAX_WINDOWS);
        assert!(w.windows(2).all(|p| p[0].high <= p[1].low));
    }
}
