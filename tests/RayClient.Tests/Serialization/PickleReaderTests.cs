using System.Numerics;
using System.Text.Json;
using RayClient.Serialization;
using static RayClient.Tests.Serialization.PickleTestData;

namespace RayClient.Tests.Serialization;

public class PickleReaderTests
{
    private const string ClientId = "c0ffeec0ffeec0ffeec0ffeec0ffeeab";

    private static readonly int[] AllProtocols = [0, 1, 2, 3, 4, 5];
    private static readonly int[] BinaryProtocols = [2, 3, 4, 5];

    // Protocol 0 writes persistent ids as text (PERSID), so a PickleStub needs protocol 1 or later.
    private static readonly int[] PersistentIdProtocols = [1, 2, 3, 4, 5];

    /// <summary>Python expressions, pickled by python3 with each protocol, and the .NET value the reader must return.</summary>
    private static List<(string Id, string Expression, object? Expected, int[] Protocols)> Cases()
    {
        var stub = new PickleStub("Object", ClientId, Enumerable.Repeat((byte)1, 28).ToArray(), null, null);
        return
        [
            ("None", "None", null, AllProtocols),
            ("True", "True", true, AllProtocols),
            ("False", "False", false, AllProtocols),
            ("Int0", "0", 0, AllProtocols),
            ("Int255", "255", 255, AllProtocols),
            ("Int256", "256", 256, AllProtocols),
            ("Int65535", "65535", 65535, AllProtocols),
            ("Int65536", "65536", 65536, AllProtocols),
            ("IntMinus1", "-1", -1, AllProtocols),
            ("IntMax", "2**31-1", int.MaxValue, AllProtocols),
            ("IntMin", "-2**31", int.MinValue, AllProtocols),
            ("Long2p31", "2**31", 2147483648L, AllProtocols),
            ("LongMax", "2**63-1", long.MaxValue, AllProtocols),
            ("LongMin", "-2**63", long.MinValue, AllProtocols),
            ("Big2p63", "2**63", BigInteger.Pow(2, 63), AllProtocols),
            ("Big2p70", "2**70", BigInteger.Pow(2, 70), AllProtocols),
            ("BigMinus2p70", "-2**70", -BigInteger.Pow(2, 70), AllProtocols),
            ("Big10p100", "10**100", BigInteger.Pow(10, 100), AllProtocols),
            ("Big2p3000", "2**3000", BigInteger.Pow(2, 3000), BinaryProtocols),
            ("Float", "1.5", 1.5, AllProtocols),
            ("FloatMinus0", "-0.0", -0.0, AllProtocols),
            ("FloatNaN", "float('nan')", double.NaN, AllProtocols),
            ("FloatInf", "float('inf')", double.PositiveInfinity, AllProtocols),
            ("FloatMinusInf", "float('-inf')", double.NegativeInfinity, AllProtocols),
            ("Float1e300", "1e300", 1e300, AllProtocols),
            ("StrEmpty", "''", "", AllProtocols),
            ("StrUnicode", "'héllo 日本 😀 𝄞'", "héllo 日本 😀 𝄞", AllProtocols),
            ("StrControl", "'a\\nb\\\\c\\x00\\r\\x1a'", "a\nb\\c\0\r\x1a", AllProtocols),
            ("StrLoneSurrogate", "'a\\ud800b'", "a\ud800b", AllProtocols),
            ("StrLarge", "'é'*70000", new string('é', 70_000), BinaryProtocols),
            ("Bytes0", "b''", Array.Empty<byte>(), AllProtocols),
            ("Bytes255", "pattern(255)", Pattern(255), AllProtocols),
            ("Bytes256", "pattern(256)", Pattern(256), BinaryProtocols),
            ("Bytes65535", "pattern(65535)", Pattern(65535), BinaryProtocols),
            ("Bytes65536", "pattern(65536)", Pattern(65536), BinaryProtocols),
            ("Bytes5MiB", "pattern(5*1024*1024)", Pattern(5 * 1024 * 1024), BinaryProtocols),
            ("ByteArray", "bytearray(b'abc')", "abc"u8.ToArray(), AllProtocols),
            ("TupleEmpty", "()", PyTuple.Empty, AllProtocols),
            ("Tuple1", "(1,)", new PyTuple(1), AllProtocols),
            ("Tuple4", "(1, 'a', None, 2.5)", new PyTuple(1, "a", null, 2.5), AllProtocols),
            ("ListEmpty", "[]", List(), AllProtocols),
            ("ListNested", "[1, [2, [3]], 'x']", List(1, List(2, List(3)), "x"), AllProtocols),
            ("List2500", "list(range(2500))", List([.. Enumerable.Range(0, 2500).Cast<object?>()]), AllProtocols),
            ("DictEmpty", "{}", Dict(), AllProtocols),
            ("Dict", "{'a': 1, 'b': [True]}", Dict(("a", 1), ("b", List(true))), AllProtocols),
            ("DictTupleKey", "{(1, 2): 't', (1, (2, 3)): 'n'}", Dict((new PyTuple(1, 2), "t"), (new PyTuple(1, new PyTuple(2, 3)), "n")), AllProtocols),
            ("DictIntKey", "{1: 'x', 2**70: 'big'}", Dict((1, "x"), (BigInteger.Pow(2, 70), "big")), AllProtocols),
            ("DictBytesKey", "{b'k': 1}", Dict(("k"u8.ToArray(), 1)), AllProtocols),
            ("Dict2500", "{str(i): i for i in range(2500)}", Dict([.. Enumerable.Range(0, 2500).Select(i => ((object)i.ToString(System.Globalization.CultureInfo.InvariantCulture), (object?)i))]), BinaryProtocols),
            ("SetEmpty", "set()", Set(), AllProtocols),
            ("Set", "{1, 'a', (2, 3)}", Set(1, "a", new PyTuple(2, 3)), AllProtocols),
            ("FrozenSet", "frozenset({'a'})", Set("a"), AllProtocols),
            ("Set2500", "set(range(2500))", Set([.. Enumerable.Range(0, 2500).Cast<object?>()]), BinaryProtocols),
            ("Decimal", "decimal.Decimal('1.50')", 1.50m, AllProtocols),
            ("DecimalNaN", "decimal.Decimal('NaN')", new PyObject(new PyGlobal("decimal", "Decimal"), new PyTuple("NaN"), false), AllProtocols),
            ("Complex", "complex(1, -2)", new Complex(1, -2), AllProtocols),
            ("ArrayInt", "array.array('i', [1, -2, 3])", new[] { 1, -2, 3 }, AllProtocols),
            ("ArrayDouble", "array.array('d', [1.5, -0.5])", new[] { 1.5, -0.5 }, AllProtocols),
            ("ArrayLongLong", "array.array('q', [2**40, -1])", new[] { 1L << 40, -1L }, BinaryProtocols),
            ("OrderedDict", "collections.OrderedDict([('b', 1), ('a', 2)])", Dict(("b", 1), ("a", 2)), AllProtocols),
            ("DefaultDict", "collections.defaultdict(list, {'a': [1]})", Dict(("a", List(1))), AllProtocols),
            ("Counter", "collections.Counter('aab')", Dict(("a", 2), ("b", 1)), BinaryProtocols),
            ("DateTime", "datetime.datetime(2024, 1, 2, 3, 4, 5, 678901)", new DateTime(2024, 1, 2, 3, 4, 5).AddTicks(6_789_010), AllProtocols),
            ("DateTimeUtc", "datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc)", new DateTimeOffset(2024, 1, 2, 0, 0, 0, TimeSpan.Zero), AllProtocols),
            ("DateTimeOffset", "datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone(datetime.timedelta(hours=-5, minutes=-30), 'X'))",
                new DateTimeOffset(2024, 1, 2, 0, 0, 0, TimeSpan.FromMinutes(-330)), AllProtocols),
            ("Date", "datetime.date(2024, 2, 29)", new DateOnly(2024, 2, 29), AllProtocols),
            ("Time", "datetime.time(1, 2, 3, 4)", new TimeOnly(1, 2, 3).Add(TimeSpan.FromTicks(40)), AllProtocols),
            ("TimeDelta", "datetime.timedelta(days=-1, seconds=5, microseconds=7)", TimeSpan.FromDays(-1) + TimeSpan.FromSeconds(5) + TimeSpan.FromTicks(70), AllProtocols),
            ("Function", "add", new PyGlobal("fakemod.tasks", "add"), AllProtocols),
            ("ClassMethod", "JobConfig.from_json", new PyGlobal("ray.job_config", "JobConfig.from_json"), BinaryProtocols),
            ("Class", "Point", new PyGlobal("mymod", "Point"), AllProtocols),
            ("Instance", "Point(1, 2)", new PyObject(new PyGlobal("mymod", "Point"), PyTuple.Empty, true) { State = Dict(("x", 1), ("y", 2)) }, BinaryProtocols),
            ("Exception", "ValueError('boom')", new PyObject(new PyGlobal("builtins", "ValueError"), new PyTuple("boom"), false), AllProtocols),
            ("StubRayShape", "FakeRef(b'\\x01'*28)", stub, PersistentIdProtocols),
            ("StubInList", "[FakeRef(b'\\x01'*28), 5]", List(stub, 5), PersistentIdProtocols),
        ];
    }

    [Fact]
    public void Read_EveryPythonTypeAndProtocol_GivesTheMappedValue()
    {
        var cases = Cases();
        var pickles = PicklesFromPython(cases.Select(c => (c.Id, c.Expression, c.Protocols)), "dumps");
        var failures = new List<string>();
        foreach (var (id, _, expected, protocols) in cases)
        {
            foreach (var protocol in protocols)
            {
                try
                {
                    AssertDeepEqual(expected, PickleReader.Read(pickles[id][protocol]), $"{id}/p{protocol}");
                }
                catch (Exception ex)
                {
                    failures.Add($"{id}/p{protocol}: {ex.Message}");
                }
            }
        }

        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    [Fact]
    public void Read_PickleStubInEveryShape_GivesThePickleStub()
    {
        var expected = new PickleStub("Object", ClientId, Enumerable.Repeat((byte)9, 28).ToArray(), null, null);
        var ray = PicklesFromPython([("Ray", "FakeRef(b'\\x09'*28)", [2, 5])], "dumps");
        var newObj = PicklesFromPython([("NewObj", "FakeRef(b'\\x09'*28)", [2, 5])], "dumps_newobj_stub");
        var plainTuple = PicklesFromPython([("Tuple", "FakeRef(b'\\x09'*28, stub_class=lambda *f: tuple(f))", [2, 5])], "dumps");
        var ourOwn = PickleWriter.SerializeToArray(expected);

        Assert.Contains("copyreg", System.Text.Encoding.ASCII.GetString(ray["Ray"][5]), StringComparison.Ordinal);
        Assert.Contains((byte)0x81, newObj["NewObj"][2]); // NEWOBJ
        foreach (var data in new[] { ray["Ray"][2], ray["Ray"][5], newObj["NewObj"][2], newObj["NewObj"][5], plainTuple["Tuple"][2], plainTuple["Tuple"][5], ourOwn })
        {
            Assert.Equal(expected, PickleReader.Read(data));
        }
    }

    [Fact]
    public void Read_WithResolver_ReplacesEveryStub()
    {
        var data = PicklesFromPython([("Refs", "{'a': FakeRef(b'\\x01'*28), 'b': [FakeRef(b'\\x02'*28)]}", [5])], "dumps")["Refs"][5];
        var resolver = new HexResolver();

        var value = PickleReader.Read(data, resolver);

        AssertDeepEqual(Dict(("a", "ref:" + string.Concat(Enumerable.Repeat("01", 28))), ("b", List("ref:" + string.Concat(Enumerable.Repeat("02", 28))))), value);
        Assert.Equal(2, resolver.Calls);
    }

    [Fact]
    public void Read_SharedAndRecursiveReferences_KeepIdentity()
    {
        var data = PicklesFromPython([("Shared", "(lambda x: [x, x, {'k': x}])([1])", [2, 5]), ("Recursive", "(lambda l: (l.append(l), l)[1])([])", [2, 5])], "dumps");

        foreach (var protocol in new[] { 2, 5 })
        {
            var shared = (List<object?>)PickleReader.Read(data["Shared"][protocol])!;
            Assert.Same(shared[0], shared[1]);
            Assert.Same(shared[0], ((Dictionary<object, object?>)shared[2]!)["k"]);

            var recursive = (List<object?>)PickleReader.Read(data["Recursive"][protocol])!;
            Assert.Same(recursive, recursive[0]);
        }
    }

    [Fact]
    public void Read_NewObjEx_KeepsKeywordArguments()
    {
        var data = PicklesFromPython([("KwOnly", "KwOnly(1, k='x')", [4, 5])], "dumps")["KwOnly"];

        foreach (var pickle in data.Values)
        {
            var obj = Assert.IsType<PyObject>(PickleReader.Read(pickle));
            Assert.Equal(new PyGlobal("mymod", "KwOnly"), obj.Class);
            AssertDeepEqual(new PyTuple(1), obj.Args);
            Assert.Equal("x", obj.Kwargs?["k"]);
            AssertDeepEqual(Dict(("a", 1), ("k", "x")), obj.State);
        }
    }

    [Fact]
    public void ReadThenWrite_UnknownPythonObjects_Python3GetsEqualObjects()
    {
        // PyObject values read from Python pickle back to the same objects (REDUCE, NEWOBJ,
        // NEWOBJ_EX, BUILD, list/dict items of subclasses).
        var expressions = new[]
        {
            "Point(1, [2, 3])",
            "KwOnly(1, k='x')",
            "ValueError('boom', 2)",
            "collections.deque([1, 2])",
            "range(1, 10, 3)",
            "decimal.Decimal('-Infinity')",
            "uuid.UUID(int=5)",
            "datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))",
        };
        var pickles = PicklesFromPython(expressions.Select((e, i) => ($"c{i}", e, new[] { 5 })), "dumps");
        var rewritten = expressions.Select((e, i) => new
        {
            expr = e,
            hex = Convert.ToHexString(PickleWriter.SerializeToArray(PickleReader.Read(pickles[$"c{i}"][5]))),
        });

        var output = PythonRunner.Run(
            """
            bad = []
            for case in json.load(sys.stdin):
                value = load(bytes.fromhex(case["hex"]))
                expected = eval(case["expr"])
                same_value = (value.args == expected.args and type(value) is type(expected)) if isinstance(expected, Exception) else value == expected
                if not same_value:
                    bad.append("%s -> %r" % (case["expr"], value))
            print(json.dumps(bad))
            """,
            JsonSerializer.Serialize(rewritten));

        Assert.Equal("[]", output.Trim());
    }

    [Fact]
    public void Read_ReadOnlySequenceInPieces_SameAsContiguous()
    {
        var data = PicklesFromPython([("Value", "{'x': list(range(100)), 'y': pattern(70000)}", [5])], "dumps")["Value"][5];
        var sequence = Split(data, 3);

        AssertDeepEqual(PickleReader.Read(data), PickleReader.Read(sequence));
        Assert.False(sequence.IsSingleSegment);
    }

    [Fact]
    public void Read_SlicedMemory_ReadsOnlyTheSlice()
    {
        var pickle = PickleWriter.SerializeToArray(List(1, "two"));
        var padded = new byte[pickle.Length + 20];
        pickle.CopyTo(padded, 7);

        AssertDeepEqual(List(1, "two"), PickleReader.Read(padded.AsMemory(7, pickle.Length)));
    }

    [Fact]
    public void Read_DictWithNoneKey_ThrowsSerializationException()
    {
        var data = PicklesFromPython([("NoneKey", "{None: 1}", [5])], "dumps")["NoneKey"][5];

        var ex = Assert.Throws<RaySerializationException>(() => PickleReader.Read(data));

        Assert.Contains("None as a key", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_EveryTruncation_ThrowsSerializationExceptionOnly()
    {
        var data = PickleWriter.SerializeToArray(new Dictionary<string, object?>
        {
            ["a"] = List(1, 2.5, "x", Pattern(300), new PyTuple(1, BigInteger.Pow(2, 80))),
            ["stub"] = new PickleStub("Actor", "c", [1], null, null),
            ["global"] = new PyReduce(new PyGlobal("m", "f"), new PyTuple(1)),
        });

        for (var length = 0; length < data.Length; length++)
        {
            Assert.Throws<RaySerializationException>(() => PickleReader.Read(data.AsMemory(0, length)));
        }
    }

    [Fact]
    public void Read_CorruptedBytes_NeverThrowsAnythingButSerializationException()
    {
        var data = PickleWriter.SerializeToArray(List(Dict(("a", 1)), new PyTuple(1, 2), "text", Pattern(100), Set(1), new PyReduce(new PyGlobal("m", "f"), PyTuple.Empty)));
        var random = new Random(1234);
        for (var round = 0; round < 3000; round++)
        {
            var copy = (byte[])data.Clone();
            copy[random.Next(copy.Length)] = (byte)random.Next(256);
            try
            {
                PickleReader.Read(copy);
            }
            catch (RaySerializationException)
            {
            }
        }
    }

    [Fact]
    public void Read_UnsupportedProtocol_Throws()
    {
        var ex = Assert.Throws<RaySerializationException>(() => PickleReader.Read(new byte[] { 0x80, 6, 0x4E, 0x2E }));

        Assert.Contains("protocol 6", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_GoldenProtocol5WithMemoAndFrame_GivesTheValue()
    {
        var data = Convert.FromHexString(GoldenPickles.Protocol5Dict);

        AssertDeepEqual(
            Dict(("name", "ray"), ("ids", List(1, 1L << 40)), ("pair", new PyTuple("a", new byte[] { 0 })), ("tags", Set("x"))),
            PickleReader.Read(data));
    }

    [Fact]
    public void Read_GoldenProtocol2WithBinPut_GivesTheValue()
    {
        var data = Convert.FromHexString(GoldenPickles.Protocol2Shared);

        var value = (List<object?>)PickleReader.Read(data)!;

        AssertDeepEqual(List(List("a"), List("a"), b("x"), 3.25), value);
        Assert.Same(value[0], value[1]);

        static byte[] b(string s) => System.Text.Encoding.ASCII.GetBytes(s);
    }

    [Fact]
    public void Read_GoldenProtocol0Text_GivesTheValue()
    {
        var data = Convert.FromHexString(GoldenPickles.Protocol0Text);

        AssertDeepEqual(Dict(("k", List(1, -2.5, "é\n", true, null, BigInteger.Pow(2, 70)))), PickleReader.Read(data));
    }

    [Theory]
    [InlineData(GoldenPickles.Python2Protocol0)]
    [InlineData(GoldenPickles.Python2Protocol2)]
    public void Read_GoldenPython2_DecodesStrAsLatin1(string hex)
    {
        var value = PickleReader.Read(Convert.FromHexString(hex));

        AssertDeepEqual(List("a\n\0\u00ff'\"", "\u00e9\u65e5", BigInteger.Pow(2, 70), 5, 1.5, new PyTuple(true, null)), value);
    }

    private sealed class HexResolver : IPickleStubResolver
    {
        public int Calls { get; private set; }

        public object? Resolve(PickleStub stub)
        {
            Calls++;
            return "ref:" + Convert.ToHexStringLower(stub.RefId);
        }
    }

    private static System.Buffers.ReadOnlySequence<byte> Split(byte[] data, int parts)
    {
        var chunks = new List<byte[]>();
        var size = (data.Length + parts - 1) / parts;
        for (var i = 0; i < data.Length; i += size)
        {
            chunks.Add(data[i..Math.Min(data.Length, i + size)]);
        }

        var first = new Chunk(chunks[0], 0);
        var last = first;
        foreach (var chunk in chunks.Skip(1))
        {
            last = last.Append(chunk);
        }

        return new System.Buffers.ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Chunk : System.Buffers.ReadOnlySequenceSegment<byte>
    {
        public Chunk(byte[] data, long runningIndex)
        {
            Memory = data;
            RunningIndex = runningIndex;
        }

        public Chunk Append(byte[] data)
        {
            var next = new Chunk(data, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    /// <summary>Pickles each expression in python3 with each protocol; <paramref name="dumper"/> is a harness function.</summary>
    internal static Dictionary<string, Dictionary<int, byte[]>> PicklesFromPython(IEnumerable<(string Id, string Expression, int[] Protocols)> cases, string dumper)
    {
        var input = JsonSerializer.Serialize(cases.Select(c => new { id = c.Id, expr = c.Expression, protocols = c.Protocols }));
        var output = PythonRunner.Run(
            $$"""
            result = {}
            for case in json.load(sys.stdin):
                value = eval(case["expr"])
                result[case["id"]] = {str(p): {{dumper}}(value, p).hex() for p in case["protocols"]}
            print(json.dumps(result))
            """,
            input);
        return JsonSerializer.Deserialize<Dictionary<string, Dictionary<string, string>>>(output)!
            .ToDictionary(c => c.Key, c => c.Value.ToDictionary(p => int.Parse(p.Key, System.Globalization.CultureInfo.InvariantCulture), p => Convert.FromHexString(p.Value)));
    }
}
