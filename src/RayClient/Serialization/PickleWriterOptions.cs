namespace RayClient.Serialization;

/// <summary>Options of <see cref="PickleWriter"/>.</summary>
internal sealed class PickleWriterOptions
{
    /// <summary>The default options.</summary>
    public static PickleWriterOptions Default { get; } = new();

    /// <summary>
    /// Pickle protocol, 4 or 5. Default 5. The writer never uses an opcode that protocol 4 lacks,
    /// so the two differ only in the <c>PROTO</c> header; a Python 3.7 server without the
    /// <c>pickle5</c> backport (Ray ≤ 2.8) rejects protocol 5 (ray-versions.md row 16).
    /// </summary>
    public int Protocol { get; set; } = 5;

    /// <summary>Wrap the opcodes in 64 KiB <c>FRAME</c>s as CPython does, which lets Python read a file-backed pickle in large blocks. Default true.</summary>
    public bool Framing { get; set; } = true;

    /// <summary>Deepest nesting of containers accepted before the value is reported as (probably) cyclic. Default 1000.</summary>
    public int MaxDepth { get; set; } = 1000;

    /// <summary>
    /// The value is a task's <c>(args, kwargs)</c> tuple: error messages then name its parts
    /// "argument 2" (0-based) and "keyword argument "name"" instead of "element 0 → element 2". Default false.
    /// </summary>
    public bool TaskArguments { get; set; }
}
