using System.Text.Json;
using RayClient.Serialization;
using RayClient.Server.Pickling;
using static RayClient.Tests.Serialization.PickleTestData;

namespace RayClient.Tests.Serialization;

public class PickleComposerTests
{
    [Fact]
    public void ComposeList_CPythonPicklesWithMemos_Python3LoadsTheListOfOriginals()
    {
        // Elements of every protocol, with shared references (memo gets), more than 256 memo
        // entries (so later elements need LONG_BINPUT/LONG_BINGET), text memo opcodes (protocol 0)
        // and a large bytes payload that must stay a linked segment.
        var elements = PythonRunner.Run(
            """
            x = [1]
            many = ["s%d" % i for i in range(300)]
            values = [
                ([x, x, {"a": x}], 5),
                (many + many, 4),
                ({"k": (x, x)}, 2),
                ([x, "text", x], 0),
                ([pattern(70000), "big"], 5),
                ((many, many), 3),
                ("plain", 1),
                (FakeRef(b"\x01" * 28), 5),
            ]
            print(json.dumps([dumps(v, p).hex() for v, p in values]))
            """);
        var pickles = JsonSerializer.Deserialize<List<string>>(elements)!.Select(h => (ReadOnlyMemory<byte>)Convert.FromHexString(h)).ToList();

        foreach (var protocol in new[] { 5, 4, 2 })
        {
            using var composed = PickleComposer.ComposeList(pickles, protocol);
            var bytes = composed.ToArray();

            // C# reads it as the list of the separately read elements.
            var expected = pickles.Select(p => PickleReader.Read(p)).ToList();
            AssertDeepEqual(expected, PickleReader.Read(bytes));

            var check = PythonRunner.Run(
                """
                data = bytes.fromhex(sys.stdin.read().strip())
                elements = json.loads(ELEMENTS)
                composed = load(data)
                originals = [load(bytes.fromhex(e)) for e in elements]
                assert composed == originals, (composed, originals)
                assert composed[0][0] is composed[0][1] is composed[0][2]["a"], "shared reference lost"
                assert composed[1][0] is composed[1][300], "memoized strings not shared"
                assert composed[3][0] is composed[3][2]
                assert composed[5][0] is composed[5][1]
                assert composed[0][0] is not composed[2]["k"][0], "elements must not share memo entries"
                print("ok", len(composed))
                """.Replace("ELEMENTS", JsonSerializer.Serialize(elements.Trim()), StringComparison.Ordinal),
                Convert.ToHexString(bytes));
            Assert.Equal($"ok {pickles.Count}", check.Trim());
        }
    }

    [Fact]
    public void ComposeList_LargePayload_IsLinkedNotCopied()
    {
        var payload = Pattern(200_000);
        using var element = PickleWriter.Serialize(List("x", payload));
        var elementBytes = (ReadOnlyMemory<byte>)element.ToArray();

        using var composed = PickleComposer.ComposeList([elementBytes, elementBytes]);

        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(elementBytes, out var source));
        var linked = 0;
        foreach (var segment in composed.AsSequence())
        {
            if (System.Runtime.InteropServices.MemoryMarshal.TryGetArray(segment, out var array) && ReferenceEquals(array.Array, source.Array))
            {
                linked++;
                Assert.Equal(payload.Length, segment.Length);
            }
        }

        Assert.Equal(2, linked);
        AssertDeepEqual(List(List("x", payload), List("x", payload)), PickleReader.Read(composed.AsSequence()));
    }

    [Fact]
    public void ComposeList_Empty_IsAnEmptyList()
    {
        using var composed = PickleComposer.ComposeList([]);

        AssertDeepEqual(List(), PickleReader.Read(composed.AsSequence()));
    }

    [Fact]
    public void ComposeList_ElementWithoutStop_Throws()
    {
        var broken = PickleWriter.SerializeToArray(List(1, 2))[..^1];

        var ex = Assert.Throws<RaySerializationException>(() => PickleComposer.ComposeList([new byte[] { 0x80, 5, 0x4E, 0x2E }, broken]));

        Assert.StartsWith("Element 1 of the list", ex.Message, StringComparison.Ordinal);
    }
}
