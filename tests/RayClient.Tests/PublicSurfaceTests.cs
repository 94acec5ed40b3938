using System.Reflection;
using RayClient.Server;

namespace RayClient.Tests;

/// <summary>
/// The shipped packages expose what users need and nothing else (issue 11 part 2): the generated
/// <c>Ray.Rpc</c> protocol types are internal, and no public or protected member of a public type
/// mentions one.
/// </summary>
public sealed class PublicSurfaceTests
{
    public static TheoryData<string> ShippedAssemblies => new()
    {
        typeof(RaySession).Assembly.GetName().Name!,
        typeof(LocalRayServer).Assembly.GetName().Name!,
    };

    [Theory]
    [MemberData(nameof(ShippedAssemblies))]
    public void ExportedTypes_ShippedAssembly_HaveNoProtocolType(string assemblyName)
    {
        var assembly = Assembly.Load(assemblyName);

        var protocolTypes = assembly.GetExportedTypes().Where(IsProtocolType).Select(t => t.FullName).ToList();

        Assert.Empty(protocolTypes);
    }

    [Theory]
    [MemberData(nameof(ShippedAssemblies))]
    public void PublicMembers_ShippedAssembly_DoNotExposeProtocolTypes(string assemblyName)
    {
        var assembly = Assembly.Load(assemblyName);

        var leaks = new List<string>();
        foreach (var type in assembly.GetExportedTypes())
        {
            if (type.BaseType is { } baseType && Mentions(baseType))
            {
                leaks.Add($"{type.FullName} : {baseType}");
            }

            const BindingFlags flags = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
            foreach (var member in type.GetMembers(flags))
            {
                if (IsVisible(member) && SignatureTypes(member).Any(Mentions))
                {
                    leaks.Add($"{type.FullName}.{member.Name}");
                }
            }
        }

        Assert.Empty(leaks);
    }

    [Theory]
    [MemberData(nameof(ShippedAssemblies))]
    public void PublicApiFiles_ShippedAssembly_ListEveryExportedTypeAndNoProtocolType(string assemblyName)
    {
        var assembly = Assembly.Load(assemblyName);
        var file = Path.Combine(RepositoryRoot(), "src", assemblyName, "PublicAPI.Shipped.txt");
        if (!File.Exists(file))
        {
            Assert.Fail($"{file} is missing: the public API of {assemblyName} is not tracked.");
        }

        var lines = File.ReadAllLines(file);
        // New API goes to PublicAPI.Unshipped.txt until a release moves it (the analyzer declares the union).
        var unshipped = Path.Combine(RepositoryRoot(), "src", assemblyName, "PublicAPI.Unshipped.txt");
        var unshippedLines = File.Exists(unshipped) ? File.ReadAllLines(unshipped) : [];

        Assert.Equal("#nullable enable", lines[0]);
        Assert.DoesNotContain(lines.Concat(unshippedLines), line => line.Contains("Ray.Rpc", StringComparison.Ordinal));
        var declared = lines.Concat(unshippedLines).ToHashSet(StringComparer.Ordinal);
        var missing = assembly.GetExportedTypes().Select(ApiName).Where(name => !declared.Contains(name)).ToList();
        Assert.Empty(missing);
    }

    [Theory]
    [MemberData(nameof(ShippedAssemblies))]
    public void InternalsVisibleTo_ShippedAssembly_GrantsTestProjectsOnly(string assemblyName)
    {
        // STYLE: "InternalsVisibleTo goes to tests only". A test project is one under tests/ (the
        // unit and functional tests, and the benchmark harness that shares their fuzzer and golden
        // pickles); a shipped assembly (the server, the CLI) must use public API or shared source
        // (src/Shared), with no exception.
        var assembly = Assembly.Load(assemblyName);
        var testsDir = Path.Combine(RepositoryRoot(), "tests");

        var friends = assembly.GetCustomAttributes<System.Runtime.CompilerServices.InternalsVisibleToAttribute>()
            .Select(a => a.AssemblyName.Split(',')[0].Trim())
            .ToList();
        var notTests = friends
            .Where(name => !File.Exists(Path.Combine(testsDir, name, $"{name}.csproj")))
            .ToList();

        Assert.Contains("RayClient.Tests", friends);
        Assert.Empty(notTests);
    }

    [Fact]
    public void ExportedTypes_Server_HaveNoTestHooks()
    {
        var exported = typeof(LocalRayServer).Assembly.GetExportedTypes();

        Assert.DoesNotContain(exported, t => t.Name is "ServerFaults" or "FaultProxy" || t.Namespace == "RayClient.Server.Testing");
        Assert.Null(typeof(LocalRayServer).GetProperty("Faults"));
    }

    // The analyzer's name of a type: nested types with '.', generic parameters in angle brackets.
    private static string ApiName(Type type)
    {
        var name = type.Name;
        var tick = name.IndexOf('`', StringComparison.Ordinal);
        if (tick >= 0)
        {
            var own = type.GetGenericArguments().Skip(type.DeclaringType?.GetGenericArguments().Length ?? 0).Select(a => a.Name);
            name = $"{name[..tick]}<{string.Join(", ", own)}>";
        }

        return type.DeclaringType is { } outer ? $"{ApiName(outer)}.{name}" : $"{type.Namespace}.{name}";
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "RayClient.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No repository root (RayClient.sln) above {AppContext.BaseDirectory}.");
    }

    private static bool IsProtocolType(Type type) => type.Namespace?.StartsWith("Ray.Rpc", StringComparison.Ordinal) == true;

    private static bool Mentions(Type type)
    {
        if (type.HasElementType)
        {
            return Mentions(type.GetElementType()!);
        }

        return IsProtocolType(type) || (type.IsGenericType && type.GetGenericArguments().Any(Mentions));
    }

    private static bool IsVisible(MemberInfo member) => member switch
    {
        MethodBase m => m.IsPublic || m.IsFamily || m.IsFamilyOrAssembly,
        FieldInfo f => f.IsPublic || f.IsFamily || f.IsFamilyOrAssembly,
        PropertyInfo p => p.GetAccessors(nonPublic: true).Any(a => a.IsPublic || a.IsFamily || a.IsFamilyOrAssembly),
        EventInfo e => e.AddMethod is { } add && (add.IsPublic || add.IsFamily || add.IsFamilyOrAssembly),
        _ => false,
    };

    private static IEnumerable<Type> SignatureTypes(MemberInfo member) => member switch
    {
        MethodInfo m => m.GetParameters().Select(p => p.ParameterType).Append(m.ReturnType),
        ConstructorInfo c => c.GetParameters().Select(p => p.ParameterType),
        FieldInfo f => [f.FieldType],
        PropertyInfo p => p.GetIndexParameters().Select(i => i.ParameterType).Append(p.PropertyType),
        EventInfo e => e.EventHandlerType is { } handler ? [handler] : [],
        _ => [],
    };
}
