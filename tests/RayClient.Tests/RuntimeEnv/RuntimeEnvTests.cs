using System.Text.Json.Nodes;
using RayClient.Packaging;

namespace RayClient.Tests.RuntimeEnvs;

public sealed class RuntimeEnvTests
{
    private const string FullJson = """
        {
          "py_modules": ["gcs://_ray_pkg_0123456789abcdef.zip", "s3://bucket/mod.whl"],
          "java_jars": ["https://example.com/a.jar"],
          "working_dir": "s3://bucket/wd.zip",
          "pip": {"packages": ["requests==2.31.0", "numpy"], "pip_check": true, "pip_version": "==23.3.1", "pip_install_options": ["--no-cache-dir"]},
          "excludes": ["*.log"],
          "env_vars": {"A": "1", "PATH_EXTRA": "${PATH}:/opt"},
          "config": {"setup_timeout_seconds": -1, "eager_install": false, "log_files": ["a.log"]},
          "worker_process_setup_hook": "mymod.setup",
          "py_executable": "uv run --project /srv/x",
          "_nsight": {"t": "cuda,cudnn", "stop-on-exit": "true"},
          "my_plugin": {"level": 3, "ratio": 0.5, "flags": [true, null, "x"]},
          "_ray_commit": "abc"
        }
        """;

    [Fact]
    public void FromJson_FullEnv_RoundTrips()
    {
        var env = RuntimeEnv.FromJson(FullJson);
        var json = env.ToJson();

        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(FullJson), JsonNode.Parse(json)), json);
        Assert.Equal(json, RuntimeEnv.FromJson(json).ToJson());
        Assert.Equal("s3://bucket/wd.zip", env.WorkingDir);
        Assert.True(env.Pip!.PipCheck);
        Assert.Equal(-1, env.Config!.SetupTimeoutSeconds);
        Assert.Equal("abc", env.Plugins!["_ray_commit"]!.GetValue<string>());
    }

    [Fact]
    public void ToPythonDict_FullEnv_UsesPlainValues()
    {
        var dict = RuntimeEnv.FromJson(FullJson).ToPythonDict();

        var pip = Assert.IsType<Dictionary<string, object?>>(dict["pip"]);
        Assert.Equal(new List<object?> { "requests==2.31.0", "numpy" }, pip["packages"]);
        Assert.Equal(true, pip["pip_check"]);
        var config = Assert.IsType<Dictionary<string, object?>>(dict["config"]);
        Assert.Equal(-1, config["setup_timeout_seconds"]);
        var plugin = Assert.IsType<Dictionary<string, object?>>(dict["my_plugin"]);
        Assert.Equal(3, plugin["level"]);
        Assert.Equal(0.5, plugin["ratio"]);
        Assert.Equal(new List<object?> { true, null, "x" }, plugin["flags"]);
        Assert.IsType<Dictionary<string, object?>>(dict["_nsight"]);
    }

    [Fact]
    public void FromJson_ShorthandForms_NormaliseLikeRay()
    {
        var env = RuntimeEnv.FromJson("""{"pip": ["a", "b"], "nsight": "default", "config": {"setup_timeout_seconds": 30}, "conda": null}""");

        Assert.Equal(
            """{"pip":{"packages":["a","b"],"pip_check":false},"config":{"setup_timeout_seconds":30,"eager_install":true},"_nsight":"default"}""",
            env.ToJson());
    }

    [Theory]
    [InlineData("""{"env_vars": {"A": 1}}""", "env_vars")]
    [InlineData("""{"env_vars": ["A"]}""", "env_vars")]
    [InlineData("""{"working_dir": 5}""", "working_dir")]
    [InlineData("""{"py_modules": "mod"}""", "py_modules")]
    [InlineData("""{"py_modules": [1]}""", "py_modules")]
    [InlineData("""{"excludes": "*.log"}""", "excludes")]
    [InlineData("""{"pip": 3}""", "pip")]
    [InlineData("""{"pip": {"packages": ["a"], "extra": 1}}""", "pip")]
    [InlineData("""{"pip": {"pip_check": true}}""", "pip")]
    [InlineData("""{"pip": {"packages": ["a"], "pip_check": "yes"}}""", "pip_check")]
    [InlineData("""{"conda": 1}""", "conda")]
    [InlineData("""{"config": {"setup_timeout_seconds": 0}}""", "setup_timeout_seconds")]
    [InlineData("""{"config": {"setup_timeout_seconds": 1.5}}""", "setup_timeout_seconds")]
    [InlineData("""{"config": {"eager_install": 1}}""", "eager_install")]
    [InlineData("""{"container": "image"}""", "container")]
    [InlineData("""{"uv": {"packages": "req.txt"}}""", "uv")]
    public void FromJson_WrongType_ThrowsNamingTheField(string json, string field)
    {
        var e = Assert.Throws<RayRuntimeEnvException>(() => RuntimeEnv.FromJson(json));

        Assert.Contains(field, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("[1, 2]")]
    [InlineData("{not json")]
    public void FromJson_NotAnObject_Throws(string json)
    {
        Assert.Throws<RayRuntimeEnvException>(() => RuntimeEnv.FromJson(json));
    }

    [Fact]
    public void FromYaml_RayCliFile_ReadsAsYamlSafeLoadThenFromJson()
    {
        // What `ray job submit --runtime-env env.yaml` reads: yaml.safe_load (YAML 1.1 scalars), then the
        // dict is validated as --runtime-env-json's would be.
        const string yaml = """
            working_dir: ./src
            pip:
              - requests==2.31.0
            env_vars:
              MODE: prod
              PORT: "8080"
            config:
              setup_timeout_seconds: 0x1e   # PyYAML: an int (30)
              eager_install: off            # PyYAML: a bool
            my_plugin: {level: 3, enabled: yes}
            """;

        var env = RuntimeEnv.FromYaml(yaml);

        Assert.Equal(
            RuntimeEnv.FromJson("""
                {"working_dir": "./src", "pip": ["requests==2.31.0"], "env_vars": {"MODE": "prod", "PORT": "8080"},
                 "config": {"setup_timeout_seconds": 30, "eager_install": false}, "my_plugin": {"level": 3, "enabled": true}}
                """).ToJson(),
            env.ToJson());
    }

    [Theory]
    [InlineData("")]
    [InlineData("# only a comment\n")]
    [InlineData("~\n")]
    public void FromYaml_EmptyDocument_IsAnEmptyEnv(string yaml)
    {
        Assert.True(RuntimeEnv.FromYaml(yaml).IsEmpty);
    }

    [Theory]
    [InlineData("env_vars:\n  SINCE: 2024-01-02\n", "line 2, column 10: '2024-01-02' is a YAML 1.1 timestamp")]
    [InlineData("env_vars: [1, 2\nworking_dir: .\n", "not valid YAML: line ")]
    [InlineData("- a\n- b\n", "must hold a mapping, got list")]
    [InlineData("just a string\n", "must hold a mapping, got str")]
    [InlineData("env_vars:\n  A: 1\n", "env_vars")]
    [InlineData("working_dir: 3\n", "working_dir")]
    public void FromYaml_BadInput_ThrowsRayRuntimeEnvExceptionSayingWhere(string yaml, string expected)
    {
        var e = Assert.Throws<RayRuntimeEnvException>(() => RuntimeEnv.FromYaml(yaml));

        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_PipAndConda_ThrowsNamingBothFields()
    {
        var env = new RuntimeEnv { Pip = RuntimeEnvPip.FromPackages("requests"), Conda = RuntimeEnvConda.FromEnvName("base") };

        var e = Assert.Throws<RayRuntimeEnvException>(env.Validate);

        Assert.Contains("'pip'", e.Message, StringComparison.Ordinal);
        Assert.Contains("'conda'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_MissingWorkingDir_ThrowsNamingTheField()
    {
        var env = new RuntimeEnv { WorkingDir = Path.Combine(Path.GetTempPath(), "rayclient_missing_" + Guid.NewGuid().ToString("N")) };

        var e = Assert.Throws<RayRuntimeEnvException>(env.Validate);

        Assert.Contains("working_dir", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("https://example.com/code.tar")]
    [InlineData("s3://bucket/dir")]
    public void Validate_RemoteWorkingDirNotZip_Throws(string uri)
    {
        var e = Assert.Throws<RayRuntimeEnvException>(new RuntimeEnv { WorkingDir = uri }.Validate);

        Assert.Contains("working_dir", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_MissingPyModule_ThrowsNamingTheField()
    {
        var e = Assert.Throws<RayRuntimeEnvException>(new RuntimeEnv { PyModules = ["./no_such_module_dir_xyz"] }.Validate);

        Assert.Contains("py_modules", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_ContainerWithPip_Throws()
    {
        var env = new RuntimeEnv { Container = new JsonObject { ["image"] = "x" }, Pip = RuntimeEnvPip.FromPackages("a"), EnvVars = new Dictionary<string, string> { ["A"] = "1" } };

        var e = Assert.Throws<RayRuntimeEnvException>(env.Validate);

        Assert.Contains("'container'", e.Message, StringComparison.Ordinal);
        Assert.Contains("pip", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_BareUvRun_Throws()
    {
        var e = Assert.Throws<RayRuntimeEnvException>(new RuntimeEnv { PyExecutable = "/usr/bin/uv run" }.Validate);

        Assert.Contains("py_executable", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_EmptyCollections_AreDropped()
    {
        var env = new RuntimeEnv
        {
            EnvVars = new Dictionary<string, string>(),
            Excludes = [],
            Pip = RuntimeEnvPip.FromPackages(),
            WorkingDir = "gcs://_ray_pkg_0123456789abcdef.zip",
        }.Validate();

        Assert.Null(env.EnvVars);
        Assert.Null(env.Excludes);
        Assert.Null(env.Pip);
        Assert.Equal("""{"working_dir":"gcs://_ray_pkg_0123456789abcdef.zip"}""", env.ToJson());
    }

    [Fact]
    public void Validate_RequirementsFile_IsReadAndDeduplicated()
    {
        using var tree = new TempTree().File("requirements.txt", "requests==2.31.0\r\nnumpy\nrequests==2.31.0\n\n");

        var env = new RuntimeEnv { Pip = RuntimeEnvPip.FromRequirementsFile(tree.Path("requirements.txt")) }.Validate();

        Assert.Equal(["requests==2.31.0", "numpy"], env.Pip!.Packages!);
        Assert.Null(env.Pip.RequirementsFile);
        Assert.Same(env, env.Validate());
    }

    [Fact]
    public void Validate_CondaYamlFile_IsReadIntoADict()
    {
        using var tree = new TempTree().File("environment.yml", """
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

        var env = RuntimeEnv.FromJson($$"""{"conda": "{{tree.Path("environment.yml").Replace("\\", "\\\\", StringComparison.Ordinal)}}"}""").Validate();

        var expected = JsonNode.Parse("""
            {"name":"demo","channels":["conda-forge"],
             "dependencies":["python=3.11","pip",{"pip":["requests==2.31.0","pendulum"]}],
             "variables":{"FOO":"bar","N":3}}
            """);
        Assert.True(JsonNode.DeepEquals(expected, env.Conda!.Environment), env.ToJson());
    }

    [Fact]
    public void Validate_CondaYamlMalformed_ThrowsNamingConda()
    {
        // Anchors, once refused here, are read as PyYAML reads them now (CondaYamlTests).
        using var tree = new TempTree().File("env.yaml", "base: [a, b\nother: *b\n");

        var e = Assert.Throws<RayRuntimeEnvException>(new RuntimeEnv { Conda = RuntimeEnvConda.FromEnvironmentFile(tree.Path("env.yaml")) }.Validate);

        Assert.Contains("conda", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Merge_ChildOverridesTopLevelKeys_EnvVarsMergedChildWins()
    {
        var parent = RuntimeEnv.FromJson("""{"pip": ["requests", "chess"], "env_vars": {"A": "a", "B": "b"}, "working_dir": "gcs://_ray_pkg_1111111111111111.zip"}""");
        var child = RuntimeEnv.FromJson("""{"pip": ["torch", "ray[serve]"], "env_vars": {"B": "new", "C": "c"}}""");

        var merged = RuntimeEnv.Merge(parent, child);

        Assert.Equal(["torch", "ray[serve]"], merged.Pip!.Packages!);
        Assert.Equal(new Dictionary<string, string> { ["A"] = "a", ["B"] = "new", ["C"] = "c" }, merged.EnvVars);
        Assert.Equal("gcs://_ray_pkg_1111111111111111.zip", merged.WorkingDir);
        Assert.Same(child, RuntimeEnv.Merge(null, child));
    }

    [Fact]
    public void EnsureNoLocalPaths_LocalWorkingDir_Throws()
    {
        var e = Assert.Throws<RayRuntimeEnvException>(() => new RuntimeEnv { WorkingDir = "." }.EnsureNoLocalPaths());

        Assert.Contains("working_dir", e.Message, StringComparison.Ordinal);
    }
}
