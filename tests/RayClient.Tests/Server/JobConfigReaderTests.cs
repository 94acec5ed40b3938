using System.Collections;
using System.Text.Json;
using Google.Protobuf;
using RayClient.Serialization;
using RayClient.Server;
using RayClient.Tests.Serialization;

namespace RayClient.Tests.Server;

/// <summary>
/// The job configs and options Ray's own Python client sends, pickled by CPython with stand-ins
/// that have Ray's module/class names and attribute layouts (issue 10 §1).
/// </summary>
public sealed class JobConfigReaderTests
{
    private static readonly Lazy<Dictionary<string, JsonElement>> Pickles = new(MakePickles);

    public static TheoryData<string, int> LayoutsAndProtocols()
    {
        var data = new TheoryData<string, int>();
        foreach (var layout in new[] { "2.0", "2.3", "2.5", "2.10", "2.30" })
        {
            for (var protocol = 2; protocol <= 5; protocol++)
            {
                data.Add(layout, protocol);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(LayoutsAndProtocols))]
    public void Read_RayClientJobConfigWithRuntimeEnv_ReadsWorkingDirEnvVarsAndConfig(string layout, int protocol)
    {
        var (ns, env) = JobConfigReader.Read(Pickle($"job/{layout}/p{protocol}"));

        Assert.Equal("team-ns", ns);
        Assert.NotNull(env);
        Assert.Equal("gcs://_ray_pkg_0123456789abcdef.zip", env["working_dir"]);
        Assert.Equal(new List<object?> { "gcs://_ray_pkg_fedcba9876543210.zip" }, env["py_modules"]);
        var vars = Assert.IsAssignableFrom<IDictionary>(env["env_vars"]);
        Assert.Equal("from-ray-client", vars["GREETING"]);
        var config = Assert.IsAssignableFrom<IDictionary>(env["config"]);
        Assert.Equal(30, config["setup_timeout_seconds"]);
        Assert.Equal(true, config["eager_install"]);
        // What makes this Ray's client's form: the env is a dict subclass restored by NEWOBJ + SETITEMS.
        Assert.Contains("NEWOBJ", Opcodes($"job/{layout}/p{protocol}"));
        Assert.Contains("SETITEMS", Opcodes($"job/{layout}/p{protocol}"));
    }

    [Fact]
    public void Read_DictSubclassWithInstanceState_ReadsItsItems()
    {
        var (_, env) = JobConfigReader.Read(Pickle("job/stateful"));

        Assert.Contains("BUILD", Opcodes("job/stateful"));
        Assert.Equal("gcs://_ray_pkg_0123456789abcdef.zip", env!["working_dir"]);
        Assert.False(env.ContainsKey("validated"));
    }

    [Fact]
    public void Read_EmptyRuntimeEnvAndNoNamespace_GiveEmptyEnvAndNullNamespace()
    {
        var (ns, env) = JobConfigReader.Read(Pickle("job/empty"));

        Assert.Null(ns);
        Assert.NotNull(env);
        Assert.Empty(env);
    }

    [Fact]
    public void Read_PlainDictRuntimeEnv_IsRead()
    {
        var (_, env) = JobConfigReader.Read(Pickle("job/plain"));

        Assert.Equal("gcs://_ray_pkg_0123456789abcdef.zip", env!["working_dir"]);
    }

    [Fact]
    public void Read_RuntimeEnvThatIsNotDictLike_ThrowsAClearError()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => JobConfigReader.Read(Pickle("job/list")));

        Assert.Contains("runtime_env is a pickled list", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TaskOptions_RuntimeEnvInstance_IsReadAsTheTasksEnv()
    {
        var options = TaskOptionsReader.Read(ByteString.CopyFrom(Pickle("options/runtime_env")));

        Assert.Equal(2, options.NumReturns);
        var env = options.RuntimeEnv!;
        var vars = Assert.IsAssignableFrom<IDictionary>(env["env_vars"]);
        Assert.Equal("task", vars["LEVEL"]);
    }

    [Fact]
    public void TaskOptions_GarbageOrOddValues_AreTicketErrorsNotCrashes()
    {
        var garbage = Assert.Throws<TicketException>(() => TaskOptionsReader.Read(ByteString.CopyFrom(0x80, 0x05, 0xff, 0x13)));
        var error = PythonErrorDecoder.Decode(garbage.ErrorPickle);
        Assert.EndsWith("UnpicklingError", error.TypeName, StringComparison.Ordinal);

        var huge = TaskOptionsReader.Read(ByteString.CopyFrom(Pickle("options/huge_num_returns")));
        Assert.Throws<TicketException>(() => huge.NumReturns);
    }

    private static byte[] Pickle(string name) => Convert.FromBase64String(Pickles.Value[name].GetProperty("b64").GetString()!);

    private static List<string> Opcodes(string name) => [.. Pickles.Value[name].GetProperty("ops").EnumerateArray().Select(e => e.GetString()!)];

    private static Dictionary<string, JsonElement> MakePickles()
    {
        var output = PythonRunner.Run(RayPythonClient.Script + """

            out = {}
            def add(name, data):
                out[name] = {"b64": b64(data), "ops": opcodes(data)}

            def full_env(cls=RuntimeEnv):
                return cls(
                    working_dir="gcs://_ray_pkg_0123456789abcdef.zip",
                    py_modules=["gcs://_ray_pkg_fedcba9876543210.zip"],
                    env_vars={"GREETING": "from-ray-client"},
                    config=RuntimeEnvConfig(setup_timeout_seconds=30))

            for layout in LAYOUTS:
                for protocol in range(2, 6):
                    add("job/%s/p%d" % (layout, protocol), dumps_job_config(ray_job_config(layout, full_env(), "team-ns"), protocol))
            add("job/stateful", dumps_job_config(ray_job_config("2.30", full_env(StatefulRuntimeEnv))))
            add("job/empty", dumps_job_config(ray_job_config("2.30", RuntimeEnv())))
            add("job/plain", dumps_job_config(ray_job_config("2.5", {"working_dir": "gcs://_ray_pkg_0123456789abcdef.zip"})))
            add("job/list", dumps_job_config(ray_job_config("2.5", ["not", "a", "dict"])))
            add("options/runtime_env", pickle.dumps({"num_returns": 2, "runtime_env": RuntimeEnv(env_vars={"LEVEL": "task"})}))
            add("options/huge_num_returns", pickle.dumps({"num_returns": 2 ** 80}))
            print(json.dumps(out))
            """);
        return JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(output)!;
    }
}
