using System.Diagnostics;
using System.Numerics;
using System.Reflection;
using RayClient.Serialization;

namespace RayClient.Tests.Serialization;

/// <summary>
/// Mutation fuzzing of the pickle codec: takes the golden pickles (CPython's, checked in) and
/// pickles of a rich value in every protocol, mutates them (bit flips, interesting bytes, huge
/// length fields, inserted, deleted, duplicated and spliced ranges, truncation) with a seeded
/// <see cref="Random"/>, and feeds each input to everything that reads peer bytes: the reader,
/// the error decoder, and what is done with a decoded value (repr, hash, typed conversion).
/// Success and <see cref="RaySerializationException"/> are the only acceptable outcomes; any
/// other exception, and any input that takes longer than <see cref="SlowInput"/>, is a finding.
/// Used by the bounded test in the suite and by <c>tests/RayClient.Benchmarks -- --fuzz</c>.
/// </summary>
internal sealed class PickleFuzzer
{
    /// <summary>One input taking this long is a finding (a quadratic path, or a hang in the making).</summary>
    public static readonly TimeSpan SlowInput = TimeSpan.FromSeconds(2);

    private static readonly byte[] Interesting = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, (byte)'(', (byte)'.', (byte)')', (byte)'N', (byte)'0', 0x94, 0x95, 0x8c, 0x8e, 0x8d, 0x93, 0x81, 0x92, 0x62, 0x52, 0x75, 0x65, 0x71, 0x68, 0x69, 0x8a, 0x8b];

    private readonly Random _random;
    private readonly List<byte[]> _corpus;

    public PickleFuzzer(int seed)
    {
        _random = new Random(seed);
        _corpus = Corpus();
    }

    public int CorpusSize => _corpus.Count;

    /// <summary>Runs <paramref name="iterations"/> mutations; returns the findings (empty when the codec held).</summary>
    public FuzzReport Run(int iterations, CancellationToken cancellationToken = default)
    {
        var report = new FuzzReport();
        var total = Stopwatch.StartNew();
        for (var i = 0; i < iterations && !cancellationToken.IsCancellationRequested; i++)
        {
            var input = Mutate(_corpus[_random.Next(_corpus.Count)]);
            var watch = Stopwatch.StartNew();
            try
            {
                if (Exercise(input))
                {
                    report.Decoded++;
                }
                else
                {
                    report.Refused++;
                }
            }
            catch (Exception ex)
            {
                report.Findings.Add($"iteration {i}: {ex.GetType().FullName}: {ex.Message}{Environment.NewLine}  input: {Convert.ToHexStringLower(input.AsSpan(0, Math.Min(input.Length, 512)))}{Environment.NewLine}{ex.StackTrace}");
            }

            watch.Stop();
            if (watch.Elapsed > SlowInput)
            {
                report.Findings.Add($"iteration {i}: took {watch.Elapsed.TotalSeconds:0.0} s; input: {Convert.ToHexStringLower(input.AsSpan(0, Math.Min(input.Length, 512)))}");
            }

            report.Slowest = watch.Elapsed > report.Slowest ? watch.Elapsed : report.Slowest;
            report.Iterations++;
        }

        report.Elapsed = total.Elapsed;
        return report;
    }

    /// <summary>Reads the input every way peer bytes are read; true when it decoded to a value.</summary>
    private static bool Exercise(byte[] input)
    {
        // The error decoder must describe anything, never throw.
        _ = PythonErrorDecoder.Decode(input);
        object? value;
        try
        {
            value = PickleReader.Read(input);
        }
        catch (RaySerializationException)
        {
            return false;
        }

        _ = PyRepr.Format(value);
        try
        {
            _ = PyValueComparer.Instance.GetHashCode(value);
            _ = PyValueComparer.Instance.Equals(value, value);
            _ = PyConvert.To<long>(value);
        }
        catch (RaySerializationException)
        {
        }

        try
        {
            _ = PyConvert.To<List<Dictionary<string, long>>>(value);
        }
        catch (RaySerializationException)
        {
        }

        try
        {
            _ = PyConvert.To<(string, double[])>(value);
        }
        catch (RaySerializationException)
        {
        }

        return true;
    }

    private byte[] Mutate(byte[] original)
    {
        var data = new List<byte>(original);
        var rounds = 1 + _random.Next(4);
        for (var round = 0; round < rounds; round++)
        {
            if (data.Count == 0)
            {
                data.Add(Interesting[_random.Next(Interesting.Length)]);
            }

            var at = _random.Next(data.Count);
            switch (_random.Next(9))
            {
                case 0: // flip a bit
                    data[at] ^= (byte)(1 << _random.Next(8));
                    break;
                case 1: // an interesting byte (often an opcode)
                    data[at] = Interesting[_random.Next(Interesting.Length)];
                    break;
                case 2: // a random byte
                    data[at] = (byte)_random.Next(256);
                    break;
                case 3: // a huge or negative length field
                    var length = _random.Next(4) switch { 0 => 0xffffffffu, 1 => 0x7fffffffu, 2 => 0x80000000u, _ => (uint)_random.Next() };
                    for (var k = 0; k < 4 && at + k < data.Count; k++)
                    {
                        data[at + k] = (byte)(length >> (8 * k));
                    }

                    break;
                case 4: // insert random bytes
                    var insert = new byte[1 + _random.Next(8)];
                    _random.NextBytes(insert);
                    data.InsertRange(at, insert);
                    break;
                case 5: // delete a range
                    data.RemoveRange(at, Math.Min(data.Count - at, 1 + _random.Next(16)));
                    break;
                case 6: // duplicate a range (repeats opcodes: deep nesting, memo reuse)
                    var count = Math.Min(data.Count - at, 1 + _random.Next(32));
                    var copies = 1 + _random.Next(64);
                    var range = data.GetRange(at, count);
                    for (var c = 0; c < copies; c++)
                    {
                        data.InsertRange(at, range);
                    }

                    break;
                case 7: // truncate
                    data.RemoveRange(at, data.Count - at);
                    break;
                default: // splice in a piece of another corpus item
                    var other = _corpus[_random.Next(_corpus.Count)];
                    var from = _random.Next(other.Length);
                    data.InsertRange(at, other.AsSpan(from, Math.Min(other.Length - from, 1 + _random.Next(64))).ToArray());
                    break;
            }
        }

        return [.. data];
    }

    private static List<byte[]> Corpus()
    {
        var corpus = new List<byte[]>();
        foreach (var type in new[] { typeof(GoldenPickles), typeof(GoldenErrorPickles) })
        {
            foreach (var field in type.GetFields(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static))
            {
                if (field.IsLiteral && field.GetRawConstantValue() is string hex)
                {
                    corpus.Add(Convert.FromHexString(hex));
                }
            }
        }

        var rich = new Dictionary<object, object?>
        {
            ["ints"] = new List<object?> { 0, -1, 255, 65536, long.MinValue, BigInteger.Pow(3, 100) },
            ["floats"] = new List<object?> { 1.5, double.NaN, -0.0 },
            ["text"] = "héllo\n日本",
            ["bytes"] = new byte[] { 0, 1, 2, 255 },
            [new PyTuple(1, "k")] = new PyTuple(true, null, new PyTuple()),
            ["set"] = new HashSet<object?> { 1, "a" },
            ["global"] = new PyGlobal("mymod", "Point"),
            ["call"] = new PyReduce(new PyGlobal("collections", "OrderedDict"), new PyTuple()),
            ["when"] = new DateTime(2026, 12, 5, 1, 2, 3, DateTimeKind.Utc),
            ["decimal"] = 1.25m,
        };
        for (var protocol = 4; protocol <= 5; protocol++)
        {
            corpus.Add(PickleWriter.SerializeToArray(rich, new PickleWriterOptions { Protocol = protocol }));
        }

        // Hostile shapes a peer can send: a million-bit int (messages about it must stay cheap)
        // and 20,000 nested 1-tuples (hashing and comparing them must not exhaust the stack).
        corpus.Add(PickleWriter.SerializeToArray(new List<object?> { BigInteger.One << 1_000_000, 7 }));
        const int Depth = 20_000;
        corpus.Add([0x80, 0x04, .. Enumerable.Repeat((byte)'(', Depth), (byte)')', .. Enumerable.Repeat((byte)'t', Depth), (byte)'.']);

        return corpus;
    }
}

/// <summary>What a fuzz run found.</summary>
internal sealed class FuzzReport
{
    public int Iterations { get; set; }

    public int Decoded { get; set; }

    public int Refused { get; set; }

    public TimeSpan Elapsed { get; set; }

    public TimeSpan Slowest { get; set; }

    public List<string> Findings { get; } = [];
}
