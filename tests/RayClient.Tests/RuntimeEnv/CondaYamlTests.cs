using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace RayClient.Tests.RuntimeEnvs;

/// <summary>
/// Conda <c>environment.yml</c> files as Ray reads them (<c>yaml.safe_load</c> in
/// python/ray/_private/runtime_env/validation.py, then JSON): PyYAML's YAML 1.1 implicit scalar
/// resolution (lib/yaml/resolver.py) and its constructors (lib/yaml/constructor.py, SafeConstructor).
/// The expected JSON is what <c>json.dumps(yaml.safe_load(...))</c> gives for each case; the values
/// were derived from PyYAML's resolver regexes and constructors (python3 here has no PyYAML).
/// </summary>
public class CondaYamlTests
{
    private static readonly JsonSerializerOptions Unescaped = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static TheoryData<string, string> Scalars() => new()
    {
        // null: ~, null in three spellings, and nothing at all.
        { "~", "null" }, { "null", "null" }, { "Null", "null" }, { "NULL", "null" }, { "", "null" }, { "nULL", "\"nULL\"" },
        // bool: YAML 1.1's yes/no/on/off too, in three spellings each; nothing else.
        { "yes", "true" }, { "Yes", "true" }, { "YES", "true" }, { "no", "false" }, { "No", "false" }, { "NO", "false" },
        { "true", "true" }, { "True", "true" }, { "TRUE", "true" }, { "false", "false" }, { "False", "false" }, { "FALSE", "false" },
        { "on", "true" }, { "On", "true" }, { "ON", "true" }, { "off", "false" }, { "Off", "false" }, { "OFF", "false" },
        { "y", "\"y\"" }, { "n", "\"n\"" }, { "yEs", "\"yEs\"" }, { "tRUE", "\"tRUE\"" },
        // int: decimal with underscores, 0b binary, 0-prefixed octal, 0x hex, base-60 (not 0o).
        { "0", "0" }, { "42", "42" }, { "-17", "-17" }, { "+17", "17" }, { "-0", "0" }, { "1_000", "1000" },
        { "0b1010", "10" }, { "-0b11", "-3" }, { "0755", "493" }, { "0o755", "\"0o755\"" }, { "09", "\"09\"" },
        { "0x1F", "31" }, { "0xff_ff", "65535" }, { "-0x10", "-16" }, { "1:20", "80" }, { "190:20:30", "685230" }, { "1:60", "\"1:60\"" },
        { "12345678901234567890123", "12345678901234567890123" },
        // float: a dot is needed, an exponent needs its sign, base-60 with a fraction; repr as Python's json.dumps.
        { "1.5", "1.5" }, { "-1.5", "-1.5" }, { "1.", "1.0" }, { ".5", "0.5" }, { "1_000.5", "1000.5" }, { "1.0e+3", "1000.0" },
        { "6.8523015e+5", "685230.15" }, { "1.0e+20", "1e+20" }, { "1.5e-7", "1.5e-07" }, { "0.0001", "0.0001" }, { "190:20:30.15", "685230.15" },
        { "1:30.5", "90.5" }, { "1e3", "\"1e3\"" }, { "1.0e3", "\"1.0e3\"" }, { "+.5", "\"+.5\"" }, { "-.0", "\"-.0\"" }, { "-0.0", "-0.0" },
        { "3.11", "3.11" }, { "3.10", "3.1" },
        // str: everything else, and anything quoted.
        { "python=3.11", "\"python=3.11\"" }, { "requests==2.31.0", "\"requests==2.31.0\"" }, { "\"yes\"", "\"yes\"" },
        { "'42'", "\"42\"" }, { "\"a\\tb\"", "\"a\\tb\"" }, { "'it''s'", "\"it's\"" }, { "2001-1-1", "\"2001-1-1\"" },
        { "a # comment", "\"a\"" }, { "a#b", "\"a#b\"" },
        // explicit core tags, as SafeConstructor builds them.
        { "!!str 123", "\"123\"" }, { "!!int \"42\"", "42" }, { "!!float 1", "1.0" }, { "!!bool yes", "true" }, { "!!null ''", "null" },
    };

    [Theory]
    [MemberData(nameof(Scalars))]
    public void Validate_CondaYamlScalar_ResolvesAsPyYaml(string scalar, string expectedJson)
    {
        var environment = Load($"name: demo\nv: {scalar}\n");

        Assert.Equal(expectedJson, environment["v"]?.ToJsonString(Unescaped) ?? "null");
    }

    [Fact]
    public void Validate_CondaYamlFile_IsReadIntoADict()
    {
        // The case SimpleYaml was written for: comments, block and flow collections, quotes.
        var environment = Load("""
            # a conda env
            name: demo
            channels:
              - conda-forge
            dependencies:
              - python=3.11
              - pip
              - pip:
                - requests==2.31.0   # inline comment
                - "pendulum"
            variables: {FOO: bar, N: 3}
            """);

        AssertJson("""
            {"name":"demo","channels":["conda-forge"],
             "dependencies":["python=3.11","pip",{"pip":["requests==2.31.0","pendulum"]}],
             "variables":{"FOO":"bar","N":3}}
            """, environment);
    }

    [Fact]
    public void Validate_CondaYamlBeyondTheOldSubset_IsReadAsPyYamlDoes()
    {
        // Anchors and aliases, merge keys, block and multi-line scalars, non-string keys (json.dumps
        // turns them into strings), a repeated key (the last one wins), a document marker, unicode.
        var environment = Load("""
            %YAML 1.1
            ---
            base: &base
              channel: conda-forge
              pinned: [numpy=1.26]
            other: *base
            merged:
              <<: *base
              channel: defaults
            script: |
              echo one
              echo two
            folded: >
              a
              b
            plain: one
              two
            1: int key
            true: bool key
            ~: null key
            1.5: float key
            dup: first
            dup: second
            unicode: "caf\u00e9 日本"
            ...
            """);

        AssertJson("""
            {"base":{"channel":"conda-forge","pinned":["numpy=1.26"]},
             "other":{"channel":"conda-forge","pinned":["numpy=1.26"]},
             "merged":{"channel":"defaults","pinned":["numpy=1.26"]},
             "script":"echo one\necho two\n","folded":"a b\n","plain":"one two",
             "1":"int key","true":"bool key","null":"null key","1.5":"float key",
             "dup":"second","unicode":"café 日本"}
            """, environment);
    }

    public static TheoryData<string, string, string> Errors() => new()
    {
        // Malformed YAML, and values that safe_load or json.dumps refuse in Ray: never misread.
        { "a: [1, 2\nb: 3\n", "line 2", "column" },
        { "a: 'open\n", "line 2", "quoted scalar" },
        { "a:\n\t- x\n", "line 1", "tab" },
        { "a: 1\n---\nb: 2\n", "line 2", "single document" },
        { "a: *nowhere\n", "line 1", "nowhere" },
        { "a: !custom x\n", "line 1", "!custom" },
        { "day: 2001-12-14\n", "line 1", "timestamp" },
        { "t: 2001-12-14t21:59:43.10-05:00\n", "line 1", "timestamp" },
        { "x: .inf\n", "line 1", ".inf" },
        { "x: -.Inf\n", "line 1", "-.Inf" },
        { "x: .NaN\n", "line 1", ".NaN" },
        { "? [a, b]\n: c\n", "line 1", "key" },
        { "x: !!binary aGVsbG8=\n", "line 1", "binary" },
    };

    [Theory]
    [MemberData(nameof(Errors))]
    public void Validate_CondaYamlThatRayRefuses_ThrowsWithLineAndColumn(string yaml, string where, string what)
    {
        var e = Assert.Throws<RayRuntimeEnvException>(() => Load(yaml));

        foreach (var part in new[] { "conda", where + ", column", what })
        {
            Assert.True(e.Message.Contains(part, StringComparison.Ordinal), $"'{part}' is not in: {e.Message}");
        }

        Assert.IsType<FormatException>(e.InnerException);
    }

    [Fact]
    public void Validate_CondaYamlNotAMapping_ThrowsNamingTheType()
    {
        var e = Assert.Throws<RayRuntimeEnvException>(() => Load("- a\n- b\n"));

        Assert.Contains("must hold a mapping", e.Message, StringComparison.Ordinal);
    }

    private static JsonObject Load(string yaml)
    {
        var path = Path.Combine(Path.GetTempPath(), $"rayclient-conda-{Guid.NewGuid():N}.yml");
        File.WriteAllText(path, yaml);
        try
        {
            return new RuntimeEnv { Conda = RuntimeEnvConda.FromEnvironmentFile(path) }.Validate().Conda!.Environment!;
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static void AssertJson(string expected, JsonNode actual) =>
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expected), actual), actual.ToJsonString());
}
