using System.Buffers;
using System.Collections;
using System.Collections.Frozen;
using System.Collections.ObjectModel;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using RayClient.Serialization;
using static RayClient.Tests.Serialization.PickleTestData;

namespace RayClient.Tests.Serialization;

public class PickleWriterTests
{
    private enum Big : ulong
    {
        Max = ulong.MaxValue,
    }

    private sealed class FakeRef(byte id) : IPickleStubSource
    {
        public PickleStub ToPickleStub() => new("Object", "cid", Enumerable.Repeat(id, 28).ToArray(), null, null);
    }

    private static IEnumerable<int> Yield(int count)
    {
        for (var i = 0; i < count; i++)
        {
            yield return i;
        }
    }

    /// <summary>Every .NET type the writer maps, with the Python value python3's pickle.loads must produce.</summary>
    private static List<(string Id, object? Value, string Expected)> Cases()
    {
        var shared = new List<object?> { 1 };
        var pattern70k = Pattern(70_000);
        return
        [
            ("None", null, "None"),
            ("True", true, "True"),
            ("False", false, "False"),
            ("Int0", 0, "0"),
            ("Int1", 1, "1"),
            ("Int255", 255, "255"),
            ("Int256", 256, "256"),
            ("Int65535", 65535, "65535"),
            ("Int65536", 65536, "65536"),
            ("IntMinus1", -1, "-1"),
            ("IntMinus256", -256, "-256"),
            ("IntMax", int.MaxValue, "2**31-1"),
            ("IntMin", int.MinValue, "-2**31"),
            ("Long2p31", 2147483648L, "2**31"),
            ("LongMax", long.MaxValue, "2**63-1"),
            ("LongMin", long.MinValue, "-2**63"),
            ("ULongMax", ulong.MaxValue, "2**64-1"),
            ("ULong2p63", 9223372036854775808UL, "2**63"),
            ("Big2p70", BigInteger.Pow(2, 70), "2**70"),
            ("BigMinus2p70", -BigInteger.Pow(2, 70), "-2**70"),
            ("Big10p100", BigInteger.Pow(10, 100), "10**100"),
            ("Big2p3000Long4", BigInteger.Pow(2, 3000), "2**3000"),
            ("BigSmall", new BigInteger(42), "42"),
            ("Byte", (byte)200, "200"),
            ("SByte", (sbyte)-5, "-5"),
            ("Short", (short)-300, "-300"),
            ("UShort", (ushort)65000, "65000"),
            ("UInt", 4000000000u, "4000000000"),
            ("Int128Max", Int128.MaxValue, "2**127-1"),
            ("NInt", (nint)(-7), "-7"),
            ("EnumInt", DayOfWeek.Friday, "5"),
            ("EnumULong", Big.Max, "2**64-1"),
            ("Double0", 0.0, "0.0"),
            ("DoubleMinus0", -0.0, "-0.0"),
            ("Double1p5", 1.5, "1.5"),
            ("DoubleNaN", double.NaN, "float('nan')"),
            ("DoubleInf", double.PositiveInfinity, "float('inf')"),
            ("DoubleMinusInf", double.NegativeInfinity, "float('-inf')"),
            ("Double1e300", 1e300, "1e300"),
            ("DoubleTiny", double.Epsilon, "5e-324"),
            ("Float", 1.5f, "1.5"),
            ("Half", (Half)0.5, "0.5"),
            ("Decimal", 1.50m, "decimal.Decimal('1.50')"),
            ("DecimalNegative", -0.001m, "decimal.Decimal('-0.001')"),
            ("Complex", new Complex(1, -2), "complex(1, -2)"),
            ("StrEmpty", "", "''"),
            ("StrAscii", "a", "'a'"),
            ("StrLatin", "héllo wörld", "'héllo wörld'"),
            ("StrCjk", "日本語", "'日本語'"),
            ("StrAstral", "😀 astral 𝄞", "'😀 astral 𝄞'"),
            ("StrControl", "\0\n\\\"'", "'\\x00\\n\\\\\"\\''"),
            ("Str255", new string('x', 255), "'x'*255"),
            ("Str256", new string('x', 256), "'x'*256"),
            ("StrLarge", new string('é', 70_000), "'é'*70000"),
            ("StrLoneSurrogate", "a\ud800b", "'a\\ud800b'"),
            ("Char", 'c', "'c'"),
            ("Bytes0", Array.Empty<byte>(), "b''"),
            ("Bytes255", Pattern(255), "pattern(255)"),
            ("Bytes256", Pattern(256), "pattern(256)"),
            ("Bytes65535", Pattern(65535), "pattern(65535)"),
            ("Bytes65536", Pattern(65536), "pattern(65536)"),
            ("Bytes5MiB", Pattern(5 * 1024 * 1024), "pattern(5*1024*1024)"),
            ("ReadOnlyMemorySlice", new ReadOnlyMemory<byte>(pattern70k, 100, 65541), "pattern(70000)[100:100+65541]"),
            ("MemorySmall", new Memory<byte>(pattern70k, 1, 10), "pattern(70000)[1:11]"),
            ("ArraySegment", new ArraySegment<byte>(pattern70k, 3, 300), "pattern(70000)[3:303]"),
            ("TupleEmpty", PyTuple.Empty, "()"),
            ("Tuple1", new PyTuple(1), "(1,)"),
            ("Tuple2", new PyTuple(1, "a"), "(1, 'a')"),
            ("Tuple3", new PyTuple(1, 2, 3), "(1, 2, 3)"),
            ("Tuple4", new PyTuple(1, 2, 3, 4), "(1, 2, 3, 4)"),
            ("TupleNested", new PyTuple(new PyTuple(), new PyTuple(new PyTuple(1))), "((), ((1,),))"),
            ("ValueTuple", (1, "a", 2.5), "(1, 'a', 2.5)"),
            ("ValueTuple8", (1, 2, 3, 4, 5, 6, 7, 8), "(1, 2, 3, 4, 5, 6, 7, 8)"),
            ("SystemTuple", Tuple.Create(1, 2), "(1, 2)"),
            ("ListEmpty", new List<int>(), "[]"),
            ("ListInt", new List<int> { 1, 2, 3 }, "[1, 2, 3]"),
            ("ArrayInt", new[] { 1, -2, 300000 }, "[1, -2, 300000]"),
            ("ArrayInt2500", Enumerable.Range(0, 2500).ToArray(), "list(range(2500))"),
            ("List100k", Enumerable.Range(0, 100_000).ToList(), "list(range(100000))"),
            ("ArrayDouble", new[] { 1.5, -0.0 }, "[1.5, -0.0]"),
            ("ArrayString", new[] { "a", "b" }, "['a', 'b']"),
            ("ArrayBool", new[] { true, false }, "[True, False]"),
            ("ArrayChar", new[] { 'a', 'b' }, "['a', 'b']"),
            ("ArrayObject", new object?[] { 1, "a", null, 2.5, true }, "[1, 'a', None, 2.5, True]"),
            ("ListLong", new List<long> { long.MaxValue }, "[2**63-1]"),
            ("ListNested", List(List(1, List(2)), "x"), "[[1, [2]], 'x']"),
            ("Enumerable", Yield(2500), "list(range(2500))"),
            ("ArrayList", new ArrayList { 1, "b" }, "[1, 'b']"),
            ("SharedWrittenTwice", List(shared, shared), "[[1], [1]]"),
            ("DictEmpty", new Dictionary<string, int>(), "{}"),
            ("DictStrInt", new Dictionary<string, int> { ["a"] = 1, ["b"] = 2 }, "{'a': 1, 'b': 2}"),
            ("DictIntKey", new Dictionary<int, string> { [1] = "one" }, "{1: 'one'}"),
            ("DictTupleKey", new Dictionary<object, object?> { [new PyTuple(1, 2)] = "t" }, "{(1, 2): 't'}"),
            ("DictValueTupleKey", new Dictionary<(int, string), int> { [(1, "a")] = 1 }, "{(1, 'a'): 1}"),
            ("DictBytesKey", new Dictionary<byte[], int> { [[107]] = 1 }, "{b'k': 1}"),
            ("Dict2500", Enumerable.Range(0, 2500).ToDictionary(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture), i => i), "{str(i): i for i in range(2500)}"),
            ("DictNested", new Dictionary<string, object?> { ["a"] = new Dictionary<string, object?> { ["b"] = List(1, null) } }, "{'a': {'b': [1, None]}}"),
            ("Hashtable", new Hashtable { ["k"] = 1 }, "{'k': 1}"),
            ("SortedDictionary", new SortedDictionary<string, int> { ["z"] = 26, ["a"] = 1 }, "{'a': 1, 'z': 26}"),
            ("ReadOnlyDictionary", new ReadOnlyDictionary<string, int>(new Dictionary<string, int> { ["r"] = 1 }), "{'r': 1}"),
            ("SetEmpty", new HashSet<int>(), "set()"),
            ("SetInt", new HashSet<int> { 1, 2, 3 }, "{1, 2, 3}"),
            ("SetString", new HashSet<string> { "a" }, "{'a'}"),
            ("Set2500", Enumerable.Range(0, 2500).ToHashSet(), "set(range(2500))"),
            ("SortedSet", new SortedSet<int> { 3, 1 }, "{1, 3}"),
            ("FrozenSet", new[] { 1, 2 }.ToFrozenSet(), "{1, 2}"),
            ("PyGlobal", new PyGlobal("fakemod.tasks", "add"), "add"),
            ("PyGlobalDotted", new PyGlobal("ray.job_config", "JobConfig.from_json"), "JobConfig.from_json"),
            ("JobConfigFromJson", new PyReduce(
                new PyGlobal("ray.job_config", "JobConfig.from_json"),
                new PyTuple(new Dictionary<string, object?> { ["ray_namespace"] = "ns", ["runtime_env"] = new Dictionary<string, object?> { ["working_dir"] = "gcs://_ray_pkg_abc.zip" } })),
                "JobConfig({'ray_namespace': 'ns', 'runtime_env': {'working_dir': 'gcs://_ray_pkg_abc.zip'}})"),
            ("StubObject", new FakeRef(7), "('STUB', 'Object', 'cid', b'\\x07'*28, None, None)"),
            ("StubInList", List(new FakeRef(1), new FakeRef(2)), "[('STUB', 'Object', 'cid', b'\\x01'*28, None, None), ('STUB', 'Object', 'cid', b'\\x02'*28, None, None)]"),
            ("StubRemoteMethod", new PickleStub("RemoteMethod", "cid", Enumerable.Repeat((byte)1, 16).ToArray(), "incr", new Dictionary<string, object?> { ["num_returns"] = 2 }),
                "('STUB', 'RemoteMethod', 'cid', b'\\x01'*16, 'incr', {'num_returns': 2})"),
            ("DateTimeNaive", new DateTime(2024, 1, 2, 3, 4, 5, DateTimeKind.Unspecified).AddTicks(6_789_017), "datetime.datetime(2024, 1, 2, 3, 4, 5, 678901)"),
            ("DateTimeUtc", new DateTime(2024, 1, 2, 3, 4, 5, DateTimeKind.Utc), "datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)"),
            ("DateTimeOffset", new DateTimeOffset(2024, 1, 2, 0, 0, 0, TimeSpan.FromMinutes(-330)),
                "datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone(datetime.timedelta(hours=-5, minutes=-30)))"),
            ("DateOnly", new DateOnly(2024, 2, 29), "datetime.date(2024, 2, 29)"),
            ("TimeOnly", new TimeOnly(1, 2, 3).Add(TimeSpan.FromTicks(40)), "datetime.time(1, 2, 3, 4)"),
            ("TimeSpan", TimeSpan.FromDays(-1) + TimeSpan.FromSeconds(5) + TimeSpan.FromTicks(70), "datetime.timedelta(days=-1, seconds=5, microseconds=7)"),
            ("TimeSpanMinus1us", TimeSpan.FromTicks(-10), "datetime.timedelta(microseconds=-1)"),
        ];
    }

    [Fact]
    public void Serialize_EveryMappedType_Python3LoadsTheExpectedValue()
    {
        var cases = Cases();
        var payload = new List<Dictionary<string, object>>();
        foreach (var (id, value, expected) in cases)
        {
            foreach (var (variant, options) in new[]
                     {
                         ("p5", new PickleWriterOptions { Protocol = 5 }),
                         ("p4", new PickleWriterOptions { Protocol = 4 }),
                         ("p4-noframe", new PickleWriterOptions { Protocol = 4, Framing = false }),
                     })
            {
                payload.Add(new()
                {
                    ["id"] = $"{id}/{variant}",
                    ["hex"] = Convert.ToHexString(PickleWriter.SerializeToArray(value, options)),
                    ["expect"] = expected,
                    ["protocol"] = options.Protocol,
                });
            }
        }

        var output = PythonRunner.Run(
            """
            results = []
            for case in json.load(sys.stdin):
                try:
                    data = bytes.fromhex(case["hex"])
                    value = load(data)
                    expected = eval(case["expect"])
                    ok = same(value, expected)
                    why = "" if ok else "expected %s" % (repr(expected)[:300],)
                    if ok and max_opcode_protocol(data) > case["protocol"]:
                        ok, why = False, "uses opcodes above protocol %d" % case["protocol"]
                    results.append({"id": case["id"], "ok": ok, "why": why, "repr": repr(value)[:300]})
                except Exception as ex:
                    results.append({"id": case["id"], "ok": False, "why": "raised " + repr(ex), "repr": ""})
            print(json.dumps(results))
            """,
            JsonSerializer.Serialize(payload));

        var failures = JsonDocument.Parse(output).RootElement.EnumerateArray()
            .Where(r => !r.GetProperty("ok").GetBoolean())
            .Select(r => $"{r.GetProperty("id").GetString()}: got {r.GetProperty("repr").GetString()}; {r.GetProperty("why").GetString()}")
            .ToList();
        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
        Assert.Equal(payload.Count, JsonDocument.Parse(output).RootElement.GetArrayLength());
    }

    [Fact]
    public void Serialize_PyGlobalProtocol4WithoutFraming_IsTheSpecBytes()
    {
        var bytes = PickleWriter.SerializeToArray(new PyGlobal("mypkg.tasks", "add"), new PickleWriterOptions { Protocol = 4, Framing = false });

        Assert.Equal("80048C0B6D79706B672E7461736B738C03616464932E", Convert.ToHexString(bytes));
    }

    [Fact]
    public void Serialize_JobConfigFromJson_MatchesSpecSection73()
    {
        var value = new PyReduce(new PyGlobal("ray.job_config", "JobConfig.from_json"), new PyTuple(new Dictionary<string, object?> { ["ray_namespace"] = "ns" }));

        var bytes = PickleWriter.SerializeToArray(value, new PickleWriterOptions { Protocol = 4, Framing = false });

        var expected = "80 04 8C 0E" + Hex("ray.job_config") + "8C 13" + Hex("JobConfig.from_json") + "93 7D 28 8C 0D" + Hex("ray_namespace") + "8C 02" + Hex("ns") + "75 85 52 2E";
        Assert.Equal(expected.Replace(" ", "", StringComparison.Ordinal), Convert.ToHexString(bytes));
    }

    [Fact]
    public void Serialize_PickleStub_MatchesSpecSection62()
    {
        var clientId = new string('a', 32);
        var id = Enumerable.Range(0, 28).Select(i => (byte)i).ToArray();

        var bytes = PickleWriter.SerializeToArray(new PickleStub("Object", clientId, id, null, null), new PickleWriterOptions { Protocol = 4, Framing = false });

        var expected = "80 04 8C 1E" + Hex("ray.util.client.client_pickler") + "8C 0A" + Hex("PickleStub") + "93 28 8C 06" + Hex("Object")
            + "8C 20" + Hex(clientId) + "43 1C" + Convert.ToHexString(id) + "4E 4E 74 52 51 2E";
        Assert.Equal(expected.Replace(" ", "", StringComparison.Ordinal), Convert.ToHexString(bytes));
    }

    [Fact]
    public void Serialize_SmallValueWithFraming_OneFrameCoversTheBody()
    {
        var bytes = PickleWriter.SerializeToArray(List(1, 2, 3));

        Assert.Equal(0x80, bytes[0]);
        Assert.Equal(5, bytes[1]);
        Assert.Equal(0x95, bytes[2]);
        Assert.Equal((ulong)(bytes.Length - 11), BitConverter.ToUInt64(bytes, 3));
        Assert.Equal((byte)'.', bytes[^1]);
    }

    [Fact]
    public void Serialize_LargeByteArray_IsLinkedNotCopied()
    {
        var payload = new byte[100 * 1024 * 1024];
        payload[0] = 1;
        payload[^1] = 2;

        using var data = PickleWriter.Serialize(List("before", payload, "after"));

        var segments = new List<ReadOnlyMemory<byte>>();
        foreach (var segment in data.AsSequence())
        {
            segments.Add(segment);
        }

        var linked = segments.Where(s => MemoryMarshal.TryGetArray(s, out var array) && ReferenceEquals(array.Array, payload)).ToList();
        var only = Assert.Single(linked);
        Assert.Equal(payload.Length, only.Length);
        Assert.True(data.Length > payload.Length && data.Length < payload.Length + 200);
    }

    [Fact]
    public void Serialize_100MiB_Python3ReadsTheSameBytes()
    {
        var payload = new byte[100 * 1024 * 1024];
        new Random(42).NextBytes(payload);
        var path = Path.Combine(Path.GetTempPath(), $"rayclient-100mib-{Guid.NewGuid():N}.pickle");
        try
        {
            using (var data = PickleWriter.Serialize(new PyTuple("payload", payload, 7)))
            using (var file = File.Create(path))
            {
                foreach (var segment in data.AsSequence())
                {
                    file.Write(segment.Span);
                }
            }

            var output = PythonRunner.Run(
                """
                with open(INPUT_PATH, "rb") as f:
                    name, blob, seven = load(f.read())
                print(name, len(blob), seven, hashlib.sha256(blob).hexdigest())
                """.Replace("INPUT_PATH", JsonSerializer.Serialize(path), StringComparison.Ordinal));

            var expected = $"payload {payload.Length} 7 {Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(payload))}";
            Assert.Equal(expected, output.Trim());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Serialize_UnsupportedTypeInTaskArguments_MessageNamesTheArgumentPath()
    {
        using var stream = new MemoryStream();
        var args = new PyTuple(1, 2, new Dictionary<string, object?> { ["key"] = List(0, 1, 2, stream) });
        var value = new PyTuple(args, new Dictionary<string, object?>());

        var ex = Assert.Throws<RaySerializationException>(() => PickleWriter.Serialize(value, new PickleWriterOptions { TaskArguments = true }));

        Assert.StartsWith("argument 2 → [\"key\"] → element 3: type System.IO.MemoryStream cannot be pickled; supported types: ", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Serialize_UnsupportedTypeInKeywordArgument_MessageNamesTheKeyword()
    {
        var value = new PyTuple(PyTuple.Empty, new Dictionary<string, object?> { ["opt"] = new PyTuple(new object()) });

        var ex = Assert.Throws<RaySerializationException>(() => PickleWriter.Serialize(value, new PickleWriterOptions { TaskArguments = true }));

        Assert.StartsWith("keyword argument \"opt\" → element 0: type System.Object cannot be pickled", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Serialize_UnsupportedTypeNested_MessageHasElementPath()
    {
        var value = new Dictionary<int, List<object?>> { [4] = List(1, new Uri("http://x")) };

        var ex = Assert.Throws<RaySerializationException>(() => PickleWriter.Serialize(value));

        Assert.StartsWith("[4] → element 1: type System.Uri cannot be pickled", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Serialize_UnsupportedDictionaryKey_MessageNamesTheKeyPosition()
    {
        var value = new Dictionary<object, int> { ["ok"] = 1, [new object()] = 2 };

        var ex = Assert.Throws<RaySerializationException>(() => PickleWriter.Serialize(value));

        Assert.StartsWith("key #1: type System.Object cannot be pickled", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Serialize_ReferenceCycle_ThrowsWithCycleHint()
    {
        var list = new List<object?> { 1 };
        list.Add(list);

        var ex = Assert.Throws<RaySerializationException>(() => PickleWriter.Serialize(list));

        Assert.Contains("reference cycle", ex.Message, StringComparison.Ordinal);
        Assert.StartsWith("element 1 → element 1", ex.Message, StringComparison.Ordinal);
        Assert.True(ex.Message.Length < 1000, ex.Message);
    }

    [Fact]
    public void Serialize_Protocol3_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => PickleWriter.Serialize(1, new PickleWriterOptions { Protocol = 3 }));
    }

    [Fact]
    public void Dispose_Twice_IsHarmlessAndSequenceIsGone()
    {
        var data = PickleWriter.Serialize(List(1, "x"));
        var length = data.Length;

        data.Dispose();
        data.Dispose();

        Assert.True(length > 0);
        Assert.Throws<ObjectDisposedException>(() => data.AsSequence());
    }

    [Fact]
    public void CopyTo_MultiSegmentData_EqualsToArray()
    {
        var payload = Pattern(200_000);
        using var data = PickleWriter.Serialize(List("a", payload, new string('z', 100_000), Enumerable.Range(0, 50_000).ToArray()));

        var copy = new byte[data.Length];
        data.CopyTo(copy);
        var sequence = data.AsSequence();

        Assert.False(sequence.IsSingleSegment);
        Assert.Equal(data.ToArray(), copy);
        Assert.Equal(sequence.ToArray(), copy);
    }

    [Fact]
    public void Serialize_ThenRead_RoundTripsWithoutPython()
    {
        var value = new Dictionary<string, object?>
        {
            ["ints"] = new[] { 1, 2 },
            ["big"] = BigInteger.Pow(3, 80),
            ["tuple"] = new PyTuple("a", null, 1.5),
            ["bytes"] = Pattern(300),
            ["set"] = new HashSet<string> { "s" },
            ["global"] = new PyGlobal("m", "f"),
            ["stub"] = new PickleStub("Actor", "cid", [1, 2], null, null),
        };

        var read = PickleReader.Read(PickleWriter.SerializeToArray(value));

        var expected = Dict(
            ("ints", List(1, 2)),
            ("big", BigInteger.Pow(3, 80)),
            ("tuple", new PyTuple("a", null, 1.5)),
            ("bytes", Pattern(300)),
            ("set", Set("s")),
            ("global", new PyGlobal("m", "f")),
            ("stub", new PickleStub("Actor", "cid", [1, 2], null, null)));
        AssertDeepEqual(expected, read);
    }

    private static string Hex(string text) => Convert.ToHexString(Encoding.UTF8.GetBytes(text));
}
